"""onnxruntime (CPU): the verified ONNX file itself, and static INT8 in QDQ format."""
from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from ...errors import EdgeVisionError
from ...files import install_file
from ..onnx_graph import first_last_nodes
from ..session import Session, require

NAME = "onnxruntime"
FORMAT = "onnx"
SUFFIX = ".onnx"
SOURCE = "onnx"
# activation range estimators (weights always use their per-channel min/max)
METHODS = ("minmax", "percentile", "entropy")


def session(path: str | os.PathLike, threads: int = 0, precision: str = "fp32") -> Session:
    """An onnxruntime CPU session; ``precision`` only labels it (a QDQ graph states its own)."""
    ort = require("onnxruntime", "onnxruntime")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        so.intra_op_num_threads = threads
    so.log_severity_level = 3
    try:
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own exception types for bad files
        raise EdgeVisionError(f"onnxruntime cannot load {path}: {str(e).splitlines()[0][:200]}") from None
    name = sess.get_inputs()[0].name
    return Session(NAME, precision, lambda x: sess.run(None, {name: x})[0], name)


def build(module, example, onnx_path: Path, workdir: Path) -> Path:
    """The fp32 artifact is the exported ONNX file."""
    return onnx_path


def check_output(out: Path) -> None:
    """Any file name will do."""


def install(artifact: Path, out: Path) -> int:
    return install_file(artifact, out)


def int8(src: Path, dst: Path, calib: np.ndarray, recipe, val=None, val_labels=None) -> tuple[str, list[str]]:
    """Static INT8 in QDQ format: unsigned activations, signed (per-channel) weights, ranges from
    ``recipe.method`` over ``calib``. No accuracy control: returns ("", [])."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat,
                                          QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calib[i:i + 1] for i in range(len(calib)))

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"input": x}

    with tempfile.TemporaryDirectory() as d:
        pre = Path(d) / "pre.onnx"
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        except Exception:
            pre = src
        methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                   "entropy": CalibrationMethod.Entropy}
        # onnxruntime warns once per 1-D weight (LayerNorm scales) that it quantizes it per tensor
        # rather than per channel, which is the right thing for a vector: keep those lines out
        quiet = _DropMessages("is out-of-range for weight")
        logging.getLogger().addFilter(quiet)
        try:
            quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=recipe.per_channel, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=methods[recipe.method],
                            nodes_to_exclude=(first_last_nodes(pre) if recipe.keep_first_last else [])
                            + list(recipe.float_nodes),
                            op_types_to_quantize=None,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True,
                                           "OpTypesToExcludeOutputQuantization": list(recipe.exclude_ops)})
        finally:
            logging.getLogger().removeFilter(quiet)
    return "", []


class _DropMessages(logging.Filter):
    def __init__(self, fragment: str):
        super().__init__()
        self.fragment = fragment

    def filter(self, record) -> bool:
        return self.fragment not in record.getMessage()
