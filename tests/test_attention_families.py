"""Attention and hybrid families: any input size, bf16 autocast, family specifics."""
import math

import pytest
import torch

import edgevision as ev
from edgevision.registry import get_entry

from conftest import ALL_MODELS, registry_param, nontrivial_bn

FAMILIES = {"mobilevit", "mobilevitv2", "repvit", "efficientvit_mit", "efficientvit_msra",
            "mobilenetv4_hybrid", "edgevision_mswa"}
MODELS = [n for n in ALL_MODELS if get_entry(n).family in FAMILIES]
SIZES = ((224, 224), (256, 256), (288, 288), (192, 256))


@pytest.mark.parametrize("name", [registry_param(n) for n in MODELS])
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


@pytest.mark.parametrize("name", [registry_param(n) for n in MODELS])
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


# ------------------------------------------------------------- edgevision multi-scale windows
def _reference_window_attention(attn, x):
    """Brute force: full attention per head with a mask allowing only same-window keys."""
    n, c, h, w = x.shape
    qkv = attn.qkv(x).flatten(2).transpose(1, 2)  # (N, HW, 3C)
    q, k, v = qkv.chunk(3, dim=-1)
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    g, d = attn.heads_per_group, attn.head_dim
    outs = []
    for i, win in enumerate(attn.windows):
        if win == 0:
            allowed = torch.ones(h * w, h * w, dtype=torch.bool)
        else:
            wh, ww = min(win, h), min(win, w)
            cell = (ys // wh * 1000 + xs // ww).flatten()
            allowed = cell[:, None] == cell[None, :]
        sl = slice(i * g * d, (i + 1) * g * d)
        split = lambda t: t[..., sl].reshape(n, h * w, g, d).transpose(1, 2)  # noqa: E731
        o = torch.nn.functional.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=allowed)
        outs.append(o.transpose(1, 2).reshape(n, h * w, g * d))
    o = torch.cat(outs, -1).transpose(1, 2).reshape(n, c, h, w)
    return attn.proj(o)


@pytest.mark.parametrize("size", [(14, 14), (9, 16), (5, 4), (7, 7)])
def test_window_attention_equals_masked_full_attention(size):
    from edgevision.layers.attention_window import MultiScaleWindowAttention
    torch.manual_seed(0)
    attn = MultiScaleWindowAttention(48, 6, (3, 7, 0)).eval()
    x = torch.randn(2, 48, *size)
    with torch.no_grad():
        ref = _reference_window_attention(attn, x)
        assert torch.allclose(attn(x), ref, atol=1e-5)
        assert torch.allclose(attn(x.contiguous(memory_format=torch.channels_last)), ref, atol=1e-5)


def test_mswa_reparameterize_leaves_no_normalisation():
    model = nontrivial_bn(ev.create_model("edgevision_mswa_s"), "edgevision_mswa_s", (64, 64)).eval()
    fused = ev.reparameterize(model, input_size=(96, 80))
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    assert fused.stages[2][1].attn.qkv.bias is not None  # norm1 went into the qkv projection


def test_mswa_golden_figures():
    """edgevision's own model has no published figures: pin its size so changes are deliberate."""
    from edgevision.bench import count_macs
    with torch.device("meta"):
        model = ev.create_model("edgevision_mswa_s")
    assert ev.count_params(model) == 4_092_480
    assert round(count_macs("edgevision_mswa_s", 224, fused_attention=False) / 1e6, 1) == 445.8


# ------------------------------------------------------------------------------ EfficientViT
def test_lite_mla_equals_quadratic_relu_attention():
    """LiteMLA's linear-time form equals sum_m relu(q.k_m) v_m / (sum_m relu(q.k_m) + eps)."""
    from edgevision.layers.attention_lite import LiteMLA
    torch.manual_seed(0)
    attn = LiteMLA(32, 32, head_dim=8).eval()
    x = torch.randn(2, 32, 6, 5)
    with torch.no_grad():
        qkv = attn.qkv(x)
        qkv = torch.cat([qkv, attn.aggreg[0](qkv)], 1).view(2, -1, 24, 30)
        q, k, v = qkv.chunk(3, dim=2)
        q, k = q.relu(), k.relu()
        w = q.transpose(-1, -2) @ k  # (B, G, N, N): every query against every key
        ref = (v @ w.transpose(-1, -2)) / (w.sum(-1).unsqueeze(-2) + attn.eps)
        ref = attn.proj(ref.reshape(2, -1, 6, 5))
        assert torch.allclose(attn(x), ref, atol=1e-5, rtol=1e-4)


def test_efficientvit_m_bias_cache_follows_the_parameters():
    """The per-size bias cache must never serve stale values: in-place edits and loaded weights
    both change the output."""
    torch.manual_seed(0)
    model = nontrivial_bn(ev.create_model("efficientvit_m0", num_classes=5), "efficientvit_m0",
                          (224, 224)).eval()
    x = torch.randn(1, 3, 160, 224)
    with torch.no_grad():
        y0 = model(x)
        biases = [p for n, p in model.named_parameters() if "attention_biases" in n]
        for p in biases:
            p.add_(torch.randn_like(p))
        y1 = model(x)
        assert not torch.allclose(y0, y1)
        sd = {k: v.clone() for k, v in model.state_dict().items()}
        for p in biases:
            p.zero_()
        model.load_state_dict(sd)
        assert torch.equal(model(x), y1)


def test_efficientvit_m_reparameterize_merges_residual_dw_convs():
    name = "efficientvit_m0"
    model = nontrivial_bn(ev.create_model(name), name, (224, 224)).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "attention_biases" in n:
                p.normal_()
    fused = ev.reparameterize(model, input_size=(160, 224))  # verifies the logits itself
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    blocks = sum(len(s.blocks) for s in model.stages)
    downs = sum(not isinstance(s.downsample, torch.nn.Identity) for s in model.stages)
    from edgevision.layers import Residual
    # every block had 2 residual DW conv-BNs, every downsampling sandwich 2 more: all merged
    assert sum(isinstance(m, Residual) for m in model.modules()) \
        - sum(isinstance(m, Residual) for m in fused.modules()) == 2 * blocks + 2 * downs
