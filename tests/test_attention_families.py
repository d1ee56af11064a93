"""Attention and hybrid families (issue 4): any input size, bf16 autocast, family specifics."""
import math

import pytest
import torch

import edgevision as ev
from edgevision.registry import get_entry

from conftest import ALL_MODELS, heavy_param, nontrivial_bn

FAMILIES = {"mobilevit", "mobilevitv2", "repvit", "efficientvit_mit", "efficientvit_msra",
            "mobilenetv4_hybrid", "edgevision_mswa"}
MODELS = [n for n in ALL_MODELS if get_entry(n).family in FAMILIES]
SIZES = ((224, 224), (256, 256), (288, 288), (192, 256))


@pytest.mark.parametrize("name", [heavy_param(n) for n in MODELS])
def test_any_input_size_gives_logits_and_consistent_feature_maps(name):
    torch.manual_seed(0)
    model = ev.create_model(name, num_classes=10).eval()
    for h, w in SIZES:
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            y = model(x)
            feats = model.forward_intermediates(x, range(len(model.feature_info)))
        assert y.shape == (1, 10) and torch.isfinite(y).all(), (name, h, w)
        for f, info in zip(feats, model.feature_info):
            expect = (1, info.channels, math.ceil(h / info.reduction), math.ceil(w / info.reduction))
            assert tuple(f.shape) == expect, f"{name} at {h}x{w}: level {info.index} {tuple(f.shape)}"


@pytest.mark.parametrize("name", [heavy_param(n) for n in MODELS])
def test_bf16_autocast_forward_is_finite(name):
    torch.manual_seed(0)
    model = ev.create_model(name).eval()
    x = torch.randn(2, 3, 224, 224) * 3  # larger than normalised images: stresses the attention sums
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        y = model(x)
    assert torch.isfinite(y.float()).all()


# ------------------------------------------------------------------------------------ RepViT
def test_repvit_distillation_head_trains_on_its_own_and_averages_in_eval():
    model = ev.create_model("repvit_m0_9", num_classes=6)
    x = torch.randn(2, 3, 64, 64)
    model.train()
    assert isinstance(model(x), torch.Tensor)  # without a teacher: averaged logits
    model.set_distilled_training(True)
    cls, dist = model(x)
    assert cls.shape == dist.shape == (2, 6)
    model.eval()
    with torch.no_grad():
        cls, dist = model.head.head(model.forward_head(model.forward_features(x), pre_logits=True)), \
            model.head.head_dist(model.forward_head(model.forward_features(x), pre_logits=True))
        assert torch.allclose(model(x), (cls + dist) / 2, atol=1e-6)


def test_repvit_single_head_variant_and_reparameterized_form():
    single = ev.create_model("repvit_m1_1", distilled=False)
    both = ev.create_model("repvit_m1_1")
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    # the distillation head is one BatchNorm1d (2 x 512) + Linear (512 x 1000 + 1000) more
    assert n(both) - n(single) == 2 * 512 + 512 * 1000 + 1000
    model = nontrivial_bn(both, "repvit_m1_1", (64, 64)).eval()
    fused = ev.reparameterize(model, input_size=(64, 96))
    assert isinstance(fused.head, torch.nn.Linear)
    mixer = fused.stages[1].blocks[0].token_mixer
    assert isinstance(mixer, torch.nn.Conv2d) and mixer.kernel_size == (3, 3) and mixer.bias is not None
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fused.modules())
