"""Model families. Importing this package registers every variant."""
from . import (convnext, edgevision_mswa, efficientnet, efficientvit_mit, efficientvit_msra,  # noqa: F401
               mobilenet, mobilenetv4, mobilevit, repvit)
