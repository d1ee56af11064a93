"""Model families. Importing this package registers every variant."""
from . import (convnext, edgevision_mswa, efficientnet, efficientvit_msra, mobilenet, mobilenetv4,  # noqa: F401
               mobilevit, repvit)
