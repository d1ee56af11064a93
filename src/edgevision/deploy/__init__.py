"""From a trained model to a fast, verified artifact: reparameterize, export, quantize.

One module per runtime under targets/ (the protocol is in targets/__init__.py); export.py and
quantize.py orchestrate through it, and a QuantRecipe (recipe.py) says what an INT8 is made of."""
from .reparam import ReparamError, reparameterize

__all__ = ["reparameterize", "ReparamError"]
