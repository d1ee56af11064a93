"""Small numeric helpers shared by all families."""
from __future__ import annotations


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None,
                   round_limit: float = 0.9) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` (the TF MobileNet/EfficientNet rule).

    The result is at least ``min_value`` (default: ``divisor``) and never drops below
    ``round_limit * v``; if rounding down would, one more ``divisor`` is added.
    """
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return int(new_v)
