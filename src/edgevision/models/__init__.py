"""Model families. Importing this package registers every variant."""
from . import efficientnet, mobilenet, mobilenetv4  # noqa: F401
