"""Model families. Importing this package registers every variant."""
from . import convnext, efficientnet, mobilenet, mobilenetv4  # noqa: F401
