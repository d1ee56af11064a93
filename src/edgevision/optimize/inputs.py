"""What `optimize` starts from: the model with its weights, the images, and checks of both that
run before any work (a bad weight file or an empty image folder fails in a second, not after a
search)."""
from __future__ import annotations

import hashlib
import os

import torch

from ..deploy.calibration import QuantizeError, calibration_images
from ..errors import ConfigError


def load_model(name: str, weights=None, resolution=None):
    """(eval-mode model, resolution (H, W), description of the weights, trained?).

    ``weights``: None (random weights, the same every run, whose BatchNorm statistics are measured
    on images, so the network is well-scaled as trained ones are: a speed-only run), "pretrained" /
    "pretrained:TAG" (the model's published weights) or a weight file. Weights that do not fit
    raise WeightsError."""
    from ..factory import create_model
    from ..registry import get_entry
    from ..weights import create_with_weights
    entry = get_entry(name)
    if isinstance(resolution, int):
        resolution = (resolution, resolution)
    if resolution is not None and min(resolution) < entry.input_config.min_size:
        raise ConfigError(f"resolution {resolution[0]} is below {name}'s minimum input size "
                          f"{entry.input_config.min_size}")
    if weights is None:
        with torch.random.fork_rng():  # the same random weights every run: a rerun finds its cache
            torch.manual_seed(0)
            model = create_model(name).eval()
        res = tuple(resolution or model.input_config.input_size[1:])
        realistic_bn(model, res)
        return model.eval(), res, "random weights with measured BatchNorm statistics (speed only)", False
    if weights is True:  # as `--pretrained` without a tag
        weights = "pretrained"
    model = create_with_weights(name, os.fspath(weights))
    res = tuple(resolution or model.input_config.input_size[1:])
    pre = getattr(model, "pretrained", None)
    return model.eval(), res, (f"published weights {pre.name}" if pre is not None else os.fspath(weights)), True


def check_images(calib: str, cfg, resolution) -> None:
    """Calibration and held-out images can be drawn from ``calib`` (a folder needs at least five
    readable images: calibration, validation and held-out images are disjoint)."""
    if calib not in ("embedded", "photos") and not os.path.isdir(calib):
        raise QuantizeError(f"--calib {calib!r} is neither 'embedded', 'photos' nor a folder of images")
    calibration_images(calib, cfg, resolution, 1)
    calibration_images(calib, cfg, resolution, 1, split="test")


def weights_digest(model) -> str:
    """A digest of every tensor of the model: the cache of one set of weights is never reused for
    another."""
    h = hashlib.sha1()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def realistic_bn(model: torch.nn.Module, size: tuple[int, int], seed: int = 0) -> torch.nn.Module:
    """BatchNorm statistics measured on random images, then perturbed, and random affine params.

    Random statistics do not match the activations they normalize; in deep nets whose blocks add
    an identity (RepViT's RepVGG token mixer) the activations then grow ~3x per block to ~1e11 and
    fp32 round-off alone exceeds relative tolerances. Measured statistics keep the network
    well-scaled, like trained weights, while staying far from the identity. For timing (kernels
    do not care what the numbers are) and for export checks; agreement on such weights says
    nothing (near-tied logits)."""
    from ..images import preprocess, synthetic_image
    g = torch.Generator().manual_seed(seed)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.training) for m in bns]
    was_training = model.training
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
        if m.affine:  # gains below 1, as trained residual nets have, keep the residual sums bounded
            m.weight.copy_(torch.rand(m.num_features, generator=g) * 0.3 + 0.2)
            m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    model.train()
    size = tuple(max(v, 128) for v in size)  # tiny maps give BN too few samples per channel
    cfg = getattr(model, "input_config", None)
    for i in range(2):  # noise and natural-looking images (what export's parity check feeds)
        images = [preprocess(synthetic_image(100 + 4 * i + j, size), cfg, size) for j in range(4)]
        model(torch.cat([torch.randn(4, 3, *size, generator=g), torch.stack(images)]))
    model.train(was_training)
    for m, (momentum, training) in zip(bns, saved):
        m.momentum = momentum
        n = m.num_features
        m.running_var.clamp_(min=1e-2)  # dead channels (var ~ 0) would cancel catastrophically
        std = m.running_var.sqrt()
        m.running_mean.add_(torch.randn(n, generator=g) * 0.05 * std)
        m.running_var.mul_(torch.rand(n, generator=g) * 0.2 + 0.9)
    return model
