"""Weights: safe file io and converters from other libraries' key layouts."""
from .io import read_state_dict, save_weights
from .load import create_with_weights, load_weights
from .pretrained import Pretrained, create_model, list_pretrained

__all__ = ["read_state_dict", "save_weights", "load_weights", "create_with_weights", "create_model",
           "list_pretrained", "Pretrained"]
