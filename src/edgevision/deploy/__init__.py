"""From a trained model to a fast, verified artifact: reparameterize, export, quantize."""
from .reparam import ReparamError, reparameterize

__all__ = ["reparameterize", "ReparamError"]
