"""Attention layers, one module per kind, re-exported here (DESIGN.md: layers/attention)."""
from .attention_mobilevit import (GroupNorm1, LinearTransformerLayer, MultiHeadSelfAttention,
                                  SeparableSelfAttention, TransformerLayer)
from .attention_mqa import MultiQueryAttention2d
from .attention_window import LightweightFFN, MultiScaleWindowAttention

__all__ = ["GroupNorm1", "LightweightFFN", "LinearTransformerLayer", "MultiHeadSelfAttention",
           "MultiQueryAttention2d", "MultiScaleWindowAttention", "SeparableSelfAttention",
           "TransformerLayer"]
