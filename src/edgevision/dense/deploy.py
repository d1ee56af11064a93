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


class DetectorNetwork(torch.nn.Module):
    """The network of a torchvision SSD detector as one tensor in, one tensor out: normalize ->
    backbone -> head, returning (N, anchors, 4 + classes + 1), each anchor's box regression (SSD's
    box coder, against ``model.anchor_generator``'s default boxes) then its class logits. Anchor
    decoding and NMS stay with the caller: the phone formats have no kernel for torchvision's
    NMS, and the number of detections depends on the data, which their static graphs cannot
    hold. Takes (N, 3, S, S) images in [0, 1], like the detector. The exported output is named
    ``boxes_and_logits``."""

    output_name = "boxes_and_logits"

    def __init__(self, model, image_size: int):
        super().__init__()
        from ..models.variant import InputConfig
        if getattr(model, "kind", "") != "ssdlite":
            raise ExportError(f"only SSDLite detectors export to the phone formats, not "
                              f"{getattr(model, 'kind', type(model).__name__)!r} (RoI pooling and "
                              f"region proposals stay in PyTorch or ONNX): use export_detector")
        self.backbone, self.head = model.backbone, model.head
        t = model.transform
        self.register_buffer("mean", torch.tensor(t.image_mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(t.image_std).view(1, -1, 1, 1), persistent=False)
        self.input_config = InputConfig((3, image_size, image_size), (0.0,) * 3, (1.0,) * 3)
        self.model_name = f"ssdlite_{model.backbone_name}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.head(list(self.backbone((x - self.mean) / self.std).values()))
        return torch.cat([out["bbox_regression"], out["cls_logits"]], -1)


def mobile_network(model, image_size: int) -> torch.nn.Module:
    """What ``edgevision.deploy.export.export`` takes for a phone format (.pte, .tflite,
    .mlpackage): the segmenter itself (one image tensor in, (N, K + 1, S, S) logits out), or an
    SSDLite detector's :class:`DetectorNetwork`. The artifact's output is named ``logits`` (the
    segmenter's per-pixel class logits) or ``boxes_and_logits`` (the detector's per-anchor box
    regression and class logits) in the formats that name outputs (ONNX, Core ML)."""
    from .models import Segmenter
    if isinstance(model, Segmenter):
        from ..models.variant import InputConfig
        model.input_config = InputConfig((3, image_size, image_size), (0.0,) * 3, (1.0,) * 3)
        model.model_name = f"lraspp_{model.backbone_name}"
        return model.eval()
    return DetectorNetwork(model, image_size).eval()
