"""Model families. Importing this package registers every variant."""
from . import convnext, efficientnet, mobilenet, mobilenetv4, mobilevit  # noqa: F401
