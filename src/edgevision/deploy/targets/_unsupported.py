"""What the phone targets share: the models a target declares it cannot take, checked before any
conversion work, and the one line that says how much of a graph XNNPACK took.

Each phone target keeps a table ``{model name or family: reason}`` for fp32 export and one for
INT8; ``refuse`` looks a module up in it (by its registry name, then its family) and raises one
error naming the model, the reason and what to do instead, so nothing falls back silently.
"""
from __future__ import annotations

from ...errors import EdgeVisionError


def model_name(module) -> str:
    """The registry name of ``module`` (its class name for a model built elsewhere)."""
    return getattr(module, "model_name", "") or type(module).__name__


def declared(name: str, table: dict[str, str]) -> str:
    """The reason ``table`` gives for model ``name`` (listed by name or by family), or ""."""
    if name in table:
        return table[name]
    from ...registry import get_entry
    try:
        family = get_entry(name).family
    except EdgeVisionError:  # a model outside the registry: only its name can be listed
        return ""
    return table.get(family, "")


def refuse(module, table: dict[str, str], runtime: str, int8: bool = False) -> None:
    """Raise ExportError (QuantizeError with ``int8``) if ``table`` lists ``module``."""
    name = model_name(module)
    reason = declared(name, table)
    if not reason:
        return
    if int8:
        from ..calibration import QuantizeError
        raise QuantizeError(f"{runtime} INT8 does not support {name}: {reason}; quantize it for "
                            f"another runtime (--runtime onnxruntime or openvino) instead")
    from ..export import ExportError
    raise ExportError(f"{runtime} does not support {name}: {reason}; export it to ONNX "
                      f"(--format onnx) instead")


def delegation_line(delegated: int, total: int, partitions: int, left: dict[str, int], where: str) -> str:
    """"XNNPACK: D of T ops delegated in P partition(s)", with the op types left to ``where``
    (the runtime's own kernels) and their counts."""
    line = (f"XNNPACK: {delegated} of {total} ops delegated in {partitions} "
            f"partition{'s' * (partitions != 1)}")
    if left:
        line += f"; left to the {where}: " + ", ".join(f"{n} {op}" for op, n in left.items())
    return line
