"""Official-repository layouts of the two EfficientViTs: mit-han-lab/efficientvit (B0-B3) and
microsoft/Cream EfficientViT (M0-M5). Key names and shapes below are derived from their model code
(cited per assertion); the round trip official -> edgevision must reproduce the logits exactly."""
import importlib
import pkgutil

import pytest
import torch

import edgevision as ev
import edgevision.weights.official_efficientvit as E  # registers the layouts
from edgevision.errors import WeightsError
from edgevision.layers.attention_cga import _offset_index
from edgevision.registry import get_entry
from edgevision.weights import official

from conftest import randomize_bn, realistic_bn, small_size

MIT_ALL = [n for n in ev.list_models() if get_entry(n).family == "efficientvit_mit"]
MIT = [n for n in MIT_ALL if get_entry(n).spec.stem_block == "dsconv"]  # B: the official layout's models
MSRA = [n for n in ev.list_models() if get_entry(n).family == "efficientvit_msra"]


def _random(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    m = ev.create_model(name).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    if get_entry(name).family == "efficientvit_mit":  # random stats overflow B3 to NaN
        return realistic_bn(m, (small_size(name),) * 2)
    return randomize_bn(m)


def _round_trip(name, off, wrapper, tmp_path, src):
    torch.save({wrapper: off}, tmp_path / "official.pth")
    dst = ev.create_model(name).eval()
    assert ev.load_weights(dst, tmp_path / "official.pth").source == "official"  # auto-detected
    x = torch.randn(1, 3, small_size(name), small_size(name))
    with torch.no_grad():
        y = src(x)
        assert torch.isfinite(y).all() and torch.equal(y, dst(x))


def test_families_registered():
    assert MIT == [f"efficientvit_b{i}" for i in range(4)]
    assert MIT_ALL == MIT + [f"efficientvit_l{i}" for i in range(1, 4)]
    assert MSRA == [f"efficientvit_m{i}" for i in range(6)]


@pytest.mark.parametrize("name", MIT)
def test_official_mit_round_trip(name, tmp_path):
    src = _random(name)
    off = official.to_official(src.state_dict(), src)
    assert len(off) == len(src.state_dict())  # no derived buffers in this layout
    # every key lives under EfficientViTCls.backbone / .head (cls.py)
    assert all(k.startswith(("backbone.input_stem.op_list.", "backbone.stages.", "head.op_list."))
               for k in off)
    assert not any(k.startswith("head.op_list.1.") for k in off)  # AdaptiveAvgPool2d, no params
    assert not any(".shortcut." in k for k in off)  # IdentityLayer / None shortcuts
    if name == "efficientvit_b0":  # backbone.py efficientvit_backbone_b0: widths 8..128, dim 16
        shapes = {
            # input_stem: ConvLayer(3, 8, stride 2) (.conv/.norm), then ResidualBlock(DSConv)
            "backbone.input_stem.op_list.0.conv.weight": (8, 3, 3, 3),
            "backbone.input_stem.op_list.0.norm.running_var": (8,),
            "backbone.input_stem.op_list.1.main.depth_conv.conv.weight": (8, 1, 3, 3),
            "backbone.input_stem.op_list.1.main.point_conv.norm.weight": (8,),
            # stage 0 block 0: ResidualBlock(MBConv stride 2, None) -> still .main; expand 4
            "backbone.stages.0.op_list.0.main.inverted_conv.conv.weight": (32, 8, 1, 1),
            "backbone.stages.0.op_list.1.main.point_conv.norm.bias": (16,),
            # stage 2 block 0: fewer_norm MBConv, use_bias=(True, True, False), norm=(None, None, bn)
            "backbone.stages.2.op_list.0.main.inverted_conv.conv.bias": (128,),
            "backbone.stages.2.op_list.0.main.depth_conv.conv.bias": (128,),
            "backbone.stages.2.op_list.0.main.point_conv.norm.weight": (64,),
            # EfficientViTBlock -> ResidualBlock(LiteMLA): qkv 3 * heads * dim (4 heads of 16),
            # aggreg Sequential(DW 5x5, 1x1 with 3 * heads groups), proj ConvLayer with norm
            "backbone.stages.2.op_list.1.context_module.main.qkv.conv.weight": (192, 64, 1, 1),
            "backbone.stages.2.op_list.1.context_module.main.aggreg.0.0.weight": (192, 1, 5, 5),
            "backbone.stages.2.op_list.1.context_module.main.aggreg.0.1.weight": (192, 16, 1, 1),
            "backbone.stages.2.op_list.1.context_module.main.proj.norm.weight": (64,),
            "backbone.stages.3.op_list.2.local_module.main.inverted_conv.conv.bias": (512,),
            "backbone.stages.3.op_list.2.local_module.main.point_conv.norm.running_mean": (128,),
            # ClsHead(OpSequential): ConvLayer, pool, LinearLayer(no bias, norm "ln"), LinearLayer
            "head.op_list.0.conv.weight": (1024, 128, 1, 1),
            "head.op_list.0.norm.weight": (1024,),
            "head.op_list.2.linear.weight": (1280, 1024),
            "head.op_list.2.norm.bias": (1280,),
            "head.op_list.3.linear.weight": (1000, 1280),
            "head.op_list.3.linear.bias": (1000,),
        }
        for k, shape in shapes.items():
            assert tuple(off[k].shape) == shape, k
        assert "head.op_list.2.linear.bias" not in off
        assert "backbone.stages.2.op_list.1.context_module.main.qkv.norm.weight" not in off  # norm None
    # the MIT trainer (apps/trainer/base.py) saves {"state_dict": ...}
    _round_trip(name, off, "state_dict", tmp_path, src)


@pytest.mark.parametrize("name", MSRA)
def test_official_msra_round_trip(name, tmp_path):
    src = _random(name)
    sd = src.state_dict()
    off = official.to_official(sd, src)
    n_attn = sum(k.endswith("attention_biases") for k in sd)
    assert len(off) == len(sd) + n_attn  # + one attention_bias_idxs buffer per attention
    assert all(k.split(".")[0] in ("patch_embed", "blocks1", "blocks2", "blocks3", "head") for k in off)
    for k, v in off.items():  # the buffer: (N, N) long, N = window^2, first-occurrence order
        if k.endswith("attention_bias_idxs"):
            b = off[k.replace("attention_bias_idxs", "attention_biases")]
            assert v.dtype == torch.long and v.shape == (b.shape[1], b.shape[1])
    if name == "efficientvit_m0":  # model/build.py EfficientViT_m0: dims 64/128/192, depth 1/2/3
        shapes = {
            # patch_embed Sequential: Conv2d_BN (.c/.bn) at 0, 2, 4, 6 with ReLUs between
            "patch_embed.0.c.weight": (8, 3, 3, 3),
            "patch_embed.6.bn.running_mean": (64,),
            # EfficientViTBlock: Residual(.m) dw0 / ffn0 (FFN pw1, pw2) / mixer / dw1 / ffn1
            "blocks1.0.dw0.m.c.weight": (64, 1, 3, 3),
            "blocks1.0.ffn0.m.pw1.c.weight": (128, 64, 1, 1),
            "blocks1.0.ffn1.m.pw2.bn.weight": (64,),
            # LocalWindowAttention.attn = CascadedGroupAttention: qkvs (dim/heads -> 2 kd + d),
            # dws (kd, kernels[i]), proj Sequential(ReLU, Conv2d_BN), biases (heads, offsets)
            "blocks1.0.mixer.m.attn.qkvs.0.c.weight": (48, 16, 1, 1),
            "blocks1.0.mixer.m.attn.dws.3.c.weight": (16, 1, 5, 5),
            "blocks1.0.mixer.m.attn.proj.1.c.weight": (64, 64, 1, 1),
            "blocks1.0.mixer.m.attn.attention_biases": (4, 49),
            "blocks1.0.mixer.m.attn.attention_bias_idxs": (49, 49),
            # blocks2: [Sequential(Residual DW, Residual FFN), PatchMerging, Sequential(...), blocks]
            "blocks2.0.0.m.c.weight": (64, 1, 3, 3),
            "blocks2.0.1.m.pw2.c.weight": (64, 128, 1, 1),
            "blocks2.1.conv1.c.weight": (256, 64, 1, 1),
            "blocks2.1.conv2.c.weight": (256, 1, 3, 3),
            "blocks2.1.se.fc1.weight": (64, 256, 1, 1),  # timm SqueezeExcite(256, .25): fc1/fc2
            "blocks2.1.se.fc2.bias": (256,),
            "blocks2.1.conv3.c.weight": (128, 256, 1, 1),
            "blocks2.2.0.m.bn.weight": (128,),
            "blocks2.3.mixer.m.attn.qkvs.3.c.weight": (64, 32, 1, 1),
            "blocks2.4.ffn1.m.pw1.c.weight": (256, 128, 1, 1),
            # blocks3: resolution (7 - 1) // 2 + 1 = 4 -> window min(7, 4) = 4, 16 offsets
            "blocks3.3.mixer.m.attn.attention_biases": (4, 16),
            "blocks3.3.mixer.m.attn.attention_bias_idxs": (16, 16),
            "blocks3.5.mixer.m.attn.qkvs.0.c.weight": (80, 48, 1, 1),
            # BN_Linear: .bn (BatchNorm1d), .l
            "head.bn.running_var": (192,),
            "head.l.weight": (1000, 192),
        }
        for k, shape in shapes.items():
            assert tuple(off[k].shape) == shape, k
        assert "blocks3.6.dw0.m.c.weight" not in off
    # main.py saves {"model": model_without_ddp.state_dict(), ...}
    _round_trip(name, off, "model", tmp_path, src)


def _first_occurrence(r):
    """CascadedGroupAttention.__init__'s enumeration, written out step by step."""
    offsets, idxs = {}, []
    for p1 in [(i, j) for i in range(r) for j in range(r)]:
        for p2 in [(i, j) for i in range(r) for j in range(r)]:
            off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            if off not in offsets:
                offsets[off] = len(offsets)
            idxs.append(offsets[off])
    return torch.tensor(idxs).view(r * r, r * r)


@pytest.mark.parametrize("r", [1, 4, 7])
def test_attention_bias_idxs_values(r):
    expected = _first_occurrence(r)
    assert torch.equal(E.official_bias_idxs(r), expected)
    assert torch.equal(_offset_index(r), expected)  # our table is indexed the same way


def test_msra_to_ours_checks_and_reshapes(tmp_path):
    src = _random("efficientvit_m0")
    off = official.to_official(src.state_dict(), src)
    k = "blocks2.3.mixer.m.attn.attention_bias_idxs"
    bad = dict(off, **{k: off[k].flip(0)})
    with pytest.raises(WeightsError, match=k):
        E.msra_to_ours(bad, src)
    for extra in ("head_dist.l.weight", "blocks4.0.dw0.m.c.weight", "patch_embed.1.c.weight"):
        with pytest.raises(WeightsError, match=extra):
            E.msra_to_ours(dict(off, **{extra: torch.zeros(1)}), src)
    # the official loader (build.py) accepts 1x1 conv weights stored as (out, in)
    flat = dict(off, **{"blocks2.1.se.fc1.weight": off["blocks2.1.se.fc1.weight"].flatten(1)})
    _round_trip("efficientvit_m0", flat, "model", tmp_path, src)


def test_official_mit_layout_refuses_l_models():
    """The official L models keep their stem in backbone.stages.0: not the B layout."""
    src = ev.create_model("efficientvit_l1")
    with pytest.raises(WeightsError, match="EfficientViT-B.*source='timm'"):
        official.to_official(src.state_dict(), src)
    b0 = ev.create_model("efficientvit_b0")
    with pytest.raises(WeightsError, match="EfficientViT-B"):
        E.mit_to_ours(official.to_official(b0.state_dict(), b0), src)


def test_mit_unexpected_keys():
    src = ev.create_model("efficientvit_b0")
    off = official.to_official(src.state_dict(), src)
    for extra in ("backbone.stages.0.op_list.1.shortcut.weight", "backbone.input_stem.op_list.0.main.x",
                  "head.op_list.4.linear.weight"):
        with pytest.raises(WeightsError, match=extra):
            E.mit_to_ours(dict(off, **{extra: torch.zeros(1)}), src)


@pytest.mark.parametrize("weights, model", [("efficientvit_b0", "efficientvit_m0"),
                                            ("efficientvit_m0", "efficientvit_b0")])
def test_wrong_family_official_checkpoint(weights, model, tmp_path):
    src = ev.create_model(weights)
    torch.save({"model": official.to_official(src.state_dict(), src)}, tmp_path / "w.pth")
    for source in ("auto", "official"):
        with pytest.raises(WeightsError, match="EfficientViT"):
            ev.load_weights(ev.create_model(model), tmp_path / "w.pth", source=source)


def test_wrong_variant_official_checkpoint(tmp_path):
    src = ev.create_model("efficientvit_m5")
    torch.save({"model": official.to_official(src.state_dict(), src)}, tmp_path / "w.pth")
    with pytest.raises(WeightsError, match="do not fit"):
        ev.load_weights(ev.create_model("efficientvit_m0"), tmp_path / "w.pth")


def _other_layout_samples():
    """One state dict per family of every other registered official layout (other layout modules
    that import cleanly are loaded first, so this also checks layouts added later)."""
    import edgevision.weights as pkg
    for info in pkgutil.iter_modules(pkg.__path__):
        if "official" in info.name or "layout" in info.name:
            try:
                importlib.import_module(f"edgevision.weights.{info.name}")
            except Exception:  # another layout's module in progress: not this test's business
                pass
    out = {}
    for lay in official._LAYOUTS:
        if lay.families in (("efficientvit_mit",), ("efficientvit_msra",)):
            continue
        for fam in lay.families:
            name = next((n for n in ev.list_models() if get_entry(n).family == fam), None)
            if name:
                m = ev.create_model(name)
                out[f"{lay.name}:{name}"] = lay.to_official(m.state_dict(), m)
    return out


def test_looks_like_exclusive():
    timm = pytest.importorskip("timm")
    samples = {}
    for name in ("efficientvit_b0", "efficientvit_m0"):
        m = ev.create_model(name)
        samples[f"ours:{name}"] = m.state_dict()
        samples[f"timm:{name}"] = timm.create_model(name, pretrained=False).state_dict()
    b0, m0 = ev.create_model("efficientvit_b0"), ev.create_model("efficientvit_m0")
    samples["official:mit"] = official.to_official(b0.state_dict(), b0)
    samples["official:msra"] = official.to_official(m0.state_dict(), m0)
    samples["timm:levit_128s"] = timm.create_model("levit_128s", pretrained=False).state_dict()
    # facebookresearch/LeViT also names Conv2d_BN .c/.bn in a Sequential patch_embed, but has blocks.i
    samples["levit-like"] = {"patch_embed.0.c.weight": torch.zeros(1),
                             "blocks.0.m.qkv.c.weight": torch.zeros(1)}
    tv = pytest.importorskip("torchvision")
    samples["torchvision:mobilenet_v3_small"] = tv.models.mobilenet_v3_small().state_dict()
    samples.update(_other_layout_samples())
    for key, sd in samples.items():
        assert E.looks_like_official_efficientvit_mit(sd) == (key == "official:mit"), key
        assert E.looks_like_official_efficientvit_msra(sd) == (key == "official:msra"), key
    lays = {lay.families: lay for lay in official._LAYOUTS}
    assert official.detect_official(samples["official:mit"]) is lays[("efficientvit_mit",)]
    assert official.detect_official(samples["official:msra"]) is lays[("efficientvit_msra",)]
    for key in [k for k in samples if not k.startswith("official:")]:  # other layouts: not claimed
        assert official.detect_official(samples[key]) not in (lays[("efficientvit_mit",)],
                                                              lays[("efficientvit_msra",)]), key
