"""edgevision: efficient vision models with a verified path to deployment.

    >>> import edgevision as ev
    >>> model = ev.create_model("mobilenetv3_large_100").eval()  # random weights
    >>> model = ev.create_model("tf_efficientnet_lite0", pretrained=True)  # published weights
    >>> ev.list_models("efficientnet_b*")
"""
from .errors import ConfigError, EdgeVisionError, InputShapeError, UnknownModelError, WeightsError
from .factory import count_params
from .registry import InputConfig, list_families, list_models
from .weights import create_model, create_with_weights, list_pretrained, load_weights, save_weights

from .deploy import reparameterize  # noqa: E402

__version__ = "0.1.0"

__all__ = ["create_model", "list_pretrained", "list_models", "list_families", "load_weights", "save_weights",
           "create_with_weights", "reparameterize",
           "count_params", "InputConfig", "EdgeVisionError", "UnknownModelError", "InputShapeError",
           "ConfigError", "WeightsError", "__version__"]
