"""Attention layers, one module per kind, re-exported here (DESIGN.md: layers/attention)."""
from .attention_mobilevit import (GroupNorm1, LinearTransformerLayer, MultiHeadSelfAttention,
                                  SeparableSelfAttention, TransformerLayer)

__all__ = ["GroupNorm1", "LinearTransformerLayer", "MultiHeadSelfAttention", "SeparableSelfAttention",
           "TransformerLayer"]
