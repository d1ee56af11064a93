"""Reading an ONNX graph for the INT8 targets that start from one."""
from __future__ import annotations

from pathlib import Path


def first_last_nodes(onnx_path: Path) -> list[str]:
    """The stem conv and the classifier's last Gemm/MatMul: what ``keep_first_last`` leaves in fp32."""
    import onnx
    g = onnx.load(str(onnx_path)).graph
    convs = [n.name for n in g.node if n.op_type == "Conv"]
    heads = [n.name for n in g.node if n.op_type in ("Gemm", "MatMul")]
    return ([convs[0]] if convs else []) + ([heads[-1]] if heads else [])
