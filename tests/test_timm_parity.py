"""Fidelity against timm (test-only dependency): timm's model with random weights, converted by
edgevision's timm converter, must give the same logits (<= 1e-5 max abs, fp32, eval)."""
import pytest
import torch

import edgevision as ev
from edgevision.registry import get_entry

from conftest import ALL_MODELS, REPRESENTATIVES, is_giant, is_heavy, randomize_bn

timm = pytest.importorskip("timm")

TIMM_MODELS = [n for n in ALL_MODELS if timm.is_model(n)]
# default resolution + one other, non-square one
PARAMS = []
for n in TIMM_MODELS:  # one model per architecture in the default suite (conftest.REPRESENTATIVES)
    marks = [pytest.mark.slow] if is_heavy(n) or n not in REPRESENTATIVES else []
    PARAMS.append(pytest.param(n, marks=marks, id=n))


def _timm_and_ours(name, tmp_path, fmt):
    torch.manual_seed(0)
    ref = randomize_bn(timm.create_model(name, pretrained=False), seed=1).eval()
    with torch.no_grad():  # attention biases start at zero, which would hide their indexing
        for k, p in ref.named_parameters():
            if "attention_bias" in k:
                p.normal_()
    path = tmp_path / f"{name}.{fmt}"
    if fmt == "safetensors":
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    else:
        torch.save(ref.state_dict(), path)
    # same memory layout as timm: the check is about the conversion, not about NHWC kernels
    # summing in another order (that is covered by test_channels_last_matches_nchw)
    ours = ev.create_model(name, channels_last=False).eval()
    report = ev.load_weights(ours, path, source="timm")
    assert report.source == "timm" and not report.skipped
    return ref, ours


@pytest.mark.parametrize("name", PARAMS)
def test_converted_timm_weights_give_identical_logits(name, tmp_path):
    fmt = "safetensors" if TIMM_MODELS.index(name) % 2 else "pth"
    ref, ours = _timm_and_ours(name, tmp_path, fmt)
    res = ours.input_config.input_size[1]
    other = (max(64, res - 64), res) if res <= 256 else (160, 192)
    for h, w in ((res, res), other):
        if get_entry(name).family == "efficientvit_msra":
            # timm's bias tables are sized for one input size; ours resize by the same rule
            ref.set_input_size((h, w))
        x = torch.randn(2, 3, h, w)
        with torch.no_grad():
            diff = (ref(x) - ours(x)).abs().max().item()
        assert diff <= 1e-5, f"{name} at {h}x{w}: max abs diff {diff:.2e}"


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow)
                                  if is_giant(n) or n not in REPRESENTATIVES else n
                                  for n in TIMM_MODELS if is_heavy(n)])
def test_heavy_models_match_timm_at_small_size(name, tmp_path):
    """The heavy models' full-resolution parity runs in the slow suite; this keeps them covered
    in the default suite at a small size."""
    ref, ours = _timm_and_ours(name, tmp_path, "pth")
    x = torch.randn(1, 3, 128, 192)  # multiples of 64: MobileViT maps need no patch resizing
    with torch.no_grad():
        assert (ref(x) - ours(x)).abs().max().item() <= 1e-5


def test_auto_detects_timm_layout(tmp_path):
    ref = timm.create_model("mobilenetv3_small_100").eval()
    torch.save(ref.state_dict(), tmp_path / "w.pth")
    ours = ev.create_model("mobilenetv3_small_100").eval()
    assert ev.load_weights(ours, tmp_path / "w.pth").source == "timm"


@pytest.mark.parametrize("name", ["mobilenetv3_large_100", "efficientnet_b0", "mobilenetv4_conv_small",
                                  "efficientvit_m0", "efficientvit_b0", "repvit_m0_9"])
def test_channels_last_matches_nchw(name):
    """The NHWC default only changes the summation order inside kernels."""
    torch.manual_seed(0)
    nchw = randomize_bn(ev.create_model(name, channels_last=False)).eval()
    nhwc = ev.create_model(name, channels_last=True).eval()
    nhwc.load_state_dict(nchw.state_dict())
    x = torch.randn(2, 3, 160, 192)
    with torch.no_grad():
        a, b = nchw(x), nhwc(x)
    assert (a - b).abs().max().item() <= 1e-5 * max(1.0, a.abs().max().item())
