"""Export a whole torchvision detector (backbone + head + post-processing) to ONNX, check it in
onnxruntime against PyTorch, and time it."""
from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from ..deploy.export import ExportError
from ..files import atomic_write


def export_detector(model, path: str | Path, image_size: int, atol: float = 1e-3, seed: int = 0) -> dict:
    """ONNX export of ``model`` for one (3, S, S) image; verifies boxes/scores/labels in
    onnxruntime on a synthetic scene and returns the max differences."""
    import onnxruntime as ort

    from .data import EmbeddedDense
    model = model.eval()
    x = EmbeddedDense("test", seed + 2, image_size)[seed + 1][0]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d) / "det.onnx"
        with torch.no_grad():
            ref = model([x])[0]
        names = list(ref)  # torchvision's dict order: (boxes, scores, labels) or (boxes, labels, scores)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, ([x],), str(tmp), opset_version=17, dynamo=False, input_names=["image"],
                              output_names=names)
        sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = dict(zip(names, sess.run(None, {"image": x.numpy()})))
        boxes, scores = got["boxes"], got["scores"]
        if len(boxes) != len(ref["boxes"]):
            raise ExportError(f"onnxruntime returned {len(boxes)} detections, PyTorch {len(ref['boxes'])}")

        def canonical(b, sc):  # order by score, then box: near-tied scores may come out in any order
            order = np.lexsort((b[:, 1], b[:, 0], -np.round(sc, 4)))
            return b[order], sc[order]
        b1, s1 = canonical(np.asarray(boxes), np.asarray(scores))
        b2, s2 = canonical(ref["boxes"].numpy(), ref["scores"].numpy())
        diff = float(np.abs(b1 - b2).max()) if len(b1) else 0.0
        sdiff = float(np.abs(s1 - s2).max()) if len(s1) else 0.0
        if diff > atol * image_size or sdiff > atol:
            raise ExportError(f"exported detector differs: boxes {diff:.3g} px, scores {sdiff:.3g}")
        with atomic_write(path, ".onnx") as t:
            t.write_bytes(tmp.read_bytes())
    return {"path": str(path), "detections": len(boxes), "box_diff_px": diff, "score_diff": sdiff}


def time_onnx(path: str | Path, image_size: int, budget_s: float = 2.0) -> float:
    import onnxruntime as ort

    from ..bench.latency import measure_latency
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.rand(3, image_size, image_size).astype(np.float32)
    return measure_latency(lambda: sess.run(None, {"image": x}), min_time_s=budget_s / 2,
                           max_time_s=budget_s).median_ms
