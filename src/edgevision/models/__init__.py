"""Model families, one module each; every module lists its registered variants in ``VARIANTS``."""
from . import (convnext, edgevision_mswa, efficientnet, efficientvit_mit, efficientvit_msra,
               mobilenet, mobilenetv4, mobilevit, repvit)
from .variant import IMAGENET_INCEPTION, InputConfig, Variant

FAMILY_MODULES = (convnext, edgevision_mswa, efficientnet, efficientvit_mit, efficientvit_msra,
                  mobilenet, mobilenetv4, mobilevit, repvit)
VARIANTS: tuple[Variant, ...] = tuple(v for m in FAMILY_MODULES for v in m.VARIANTS)

__all__ = ["FAMILY_MODULES", "VARIANTS", "IMAGENET_INCEPTION", "InputConfig", "Variant"]
