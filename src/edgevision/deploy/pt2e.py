"""What the PT2E INT8 targets (ExecuTorch, LiteRT) share: the activation observer a recipe asks
for, the ReLU6 observer placement, and the calibration loop.

Both targets quantize the reparameterized PyTorch module with a PT2E quantizer of their runtime
(``XNNPACKQuantizer``, litert-torch's ``PT2EQuantizer``): symmetric signed int8 weights
(per output channel by default, depthwise convs included), signed int8 activations. Two choices
are made here for both:

- **Activation ranges**: ``method="minmax"`` observes the global min/max over the calibration
  images (the same estimator as the other runtimes); "histogram" keeps PT2E's HistogramObserver.
- **A ReLU6 is observed after its clamp** (``clamps_own_range``). PT2E annotates a conv (or add)
  and lets a following hardtanh share the conv's output observer, so the ReLU6 output is
  quantized over the *pre-clamp* range. On trained weights with BatchNorm folded into depthwise
  convs that range is tens of units wide while the clamped output lies in [0, 6], so most of
  the 256 levels go to values the clamp discards; on the published EfficientNet-Lite0 weights
  this decides whether INT8 keeps fp32's answers on real photos (docs/deploy.md has the
  figures). The runtimes fuse the clamp into the conv either way, so it costs nothing at run
  time.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

# PT2E observes the range of every activation it quantizes; eps bounds the smallest scale
_EPS = 2 ** -12


def with_observer(config, method: str):
    """``config`` (a PT2E QuantizationConfig) with the activation observer ``method`` names:
    "minmax" the global min/max; anything else keeps the config's own (histogram)."""
    if method != "minmax":
        return config
    from torchao.quantization.pt2e.observer import MinMaxObserver
    act = dataclasses.replace(config.input_activation,
                              observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=_EPS))
    return dataclasses.replace(config, input_activation=act, output_activation=act)


def clamp_aware(quantizer_class: type) -> type:
    """A subclass of the PT2E quantizer class whose annotation ends with ``clamps_own_range``."""
    def annotate(self, model):
        return clamps_own_range(super(cls, self).annotate(model))
    cls = type(f"ClampAware{quantizer_class.__name__}", (quantizer_class,), {"annotate": annotate})
    return cls


def clamps_own_range(graph):
    """Observe a ReLU6 on its output, not on its input's.

    PT2E's quantizers observe an op's output and let a following ReLU6 (hardtanh) share that
    observer, so a conv + ReLU6 is quantized over the pre-clamp range, part of it values the
    clamp discards (the hard-sigmoid's add + relu6 is observed on both sides). Moving the
    observer after the clamp, as PT2E does for conv + ReLU, gives the runtime a conv / add with
    a fused ReLU6 whose int8 output spans only what the clamp lets through."""
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, QuantizationSpec
    clamps = (torch.ops.aten.hardtanh.default, torch.ops.aten.hardtanh_.default,
              torch.ops.aten.relu6.default)
    for node in graph.graph.nodes:
        if node.op != "call_function" or node.target not in clamps:
            continue
        src = node.args[0]
        before = getattr(src, "meta", {}).get("quantization_annotation")
        if before is None or len(src.users) != 1 or not isinstance(before.output_qspec, QuantizationSpec):
            continue
        node.meta["quantization_annotation"] = QuantizationAnnotation(output_qspec=before.output_qspec,
                                                                      _annotated=True)
        before.output_qspec = None
    return graph


def calibrate(graph, images: np.ndarray) -> None:
    """Run the prepared graph on each (C, H, W) image of ``images`` at batch 1 (the graphs are
    captured at batch 1), so its observers see every image."""
    with torch.no_grad():
        for k in range(len(images)):
            graph(torch.from_numpy(np.ascontiguousarray(images[k:k + 1], dtype=np.float32)))
