"""Building bricks, each written once: every block and model composes these."""
from .act import get_act
from .conv import Conv2dSame, ConvMlp, ConvNormAct, create_conv2d, get_padding
from .drop import DropPath, drop_path
from .helpers import make_divisible
from .norm import GRN, LayerNorm2d, NormLinear, SimpleNorm, SimpleNorm2d
from .residual import Residual
from .se import SqueezeExcite

__all__ = ["get_act", "Conv2dSame", "ConvMlp", "ConvNormAct", "create_conv2d", "get_padding", "DropPath",
           "drop_path", "make_divisible", "GRN", "LayerNorm2d", "NormLinear", "SimpleNorm",
           "SimpleNorm2d", "Residual", "SqueezeExcite"]
