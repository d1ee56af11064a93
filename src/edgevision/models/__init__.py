"""Model families. Importing this package registers every variant."""
from . import convnext, edgevision_mswa, efficientnet, mobilenet, mobilenetv4, mobilevit, repvit  # noqa: F401
