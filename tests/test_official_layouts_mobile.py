"""Official-repository layouts of RepViT (THU-MIG/RepViT) and MobileViT v1/v2 (apple/ml-cvnets).

Every registered variant: random weights with non-trivial BN statistics -> official layout ->
torch.save({"model": ...}) -> load_weights (auto-detected as "official") -> identical logits.
The key names and shapes asserted below were read off the official model code; each assertion
says where it comes from.
"""

import pytest
import torch

import edgevision as ev
import edgevision.weights.official_mobile as om  # registers the layouts
from edgevision.errors import WeightsError
from edgevision.registry import get_entry, reference_figures
from edgevision.weights import official

from conftest import randomize_bn

FAMILIES = ("repvit", "mobilevit", "mobilevitv2")
NAMES = [n for n in ev.list_models() if get_entry(n).family in FAMILIES]
MINE = {om.looks_like_official_repvit, om.looks_like_official_mobilevit,
        om.looks_like_official_mobilevitv2}

# THU-MIG/RepViT model/repvit.py cfgs: number of cfg rows (features has one more entry, the
# patch_embed) and the 1-based rows with stride 2 (= features index of the downsampling blocks).
REPVIT_ROWS = {"repvit_m0_9": (26, (4, 8, 24)), "repvit_m1_0": (26, (4, 8, 24)),
               "repvit_m1_1": (24, (4, 8, 22)), "repvit_m1_5": (42, (6, 12, 38)),
               "repvit_m2_3": (54, (8, 16, 52)), "repvit_m1": (26, (4, 8, 24)),
               "repvit_m2": (24, (4, 8, 22)), "repvit_m3": (34, (6, 12, 32))}
# ml-cvnets config/mobilevit.py: (stem, layer_3 channels, layer_3 transformer dim, head width)
MOBILEVIT_V1 = {"mobilevit_xxs": (16, 48, 64, 320), "mobilevit_xs": (16, 64, 96, 384),
                "mobilevit_s": (16, 96, 144, 640)}


def _cvnets_divisible(v, divisor=8):  # ml-cvnets utils/math_utils.make_divisible
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def _shape(off, key):
    assert key in off, f"{key} missing; have e.g. {sorted(off)[:5]}"
    return tuple(off[key].shape)


def _check_repvit(name, off, distilled):
    rows, strided = REPVIT_ROWS[name]
    w = get_entry(name).spec.widths
    feats = {int(k.split(".")[1]) for k in off if k.startswith("features.")}
    assert feats == set(range(rows + 1))  # RepViT.features = [patch_embed] + one block per cfg row
    # patch_embed = Sequential(Conv2d_BN(3, c // 2, 3, 2, 1), GELU, Conv2d_BN(c // 2, c, 3, 2, 1))
    assert _shape(off, "features.0.0.c.weight") == (w[0] // 2, 3, 3, 3)
    assert _shape(off, "features.0.2.bn.running_var") == (w[0],)
    # stride-1 RepViTBlock: token_mixer = Sequential(RepVGGDW(conv: Conv2d_BN dw, conv1: Conv2d dw
    # with bias, bn), SqueezeExcite(inp, 0.25) = timm SEModule fc1/fc2 (first row has SE=1))
    assert _shape(off, "features.1.token_mixer.0.conv.c.weight") == (w[0], 1, 3, 3)
    if get_entry(name).spec.branch_bn:  # first release: conv1 is a Conv2d_BN, no bn after the sum
        assert _shape(off, "features.1.token_mixer.0.conv1.c.weight") == (w[0], 1, 1, 1)
        assert _shape(off, "features.1.token_mixer.0.conv1.bn.bias") == (w[0],)
        assert "features.1.token_mixer.0.bn.weight" not in off
    else:
        assert _shape(off, "features.1.token_mixer.0.conv1.bias") == (w[0],)
        assert _shape(off, "features.1.token_mixer.0.bn.weight") == (w[0],)
    rd = max(8, int(w[0] * 0.25 + 4) // 8 * 8)  # timm make_divisible(inp * 0.25, 8, round_limit=0)
    assert _shape(off, "features.1.token_mixer.1.fc1.weight") == (rd, w[0], 1, 1)
    # channel_mixer = Residual(Sequential(Conv2d_BN(inp, 2 inp), GELU, Conv2d_BN(2 inp, oup)))
    assert _shape(off, "features.1.channel_mixer.m.0.c.weight") == (2 * w[0], w[0], 1, 1)
    assert _shape(off, "features.1.channel_mixer.m.2.bn.bias") == (w[0],)
    # stride-2 rows: token_mixer = Sequential(Conv2d_BN dw s2, Identity (SE=0), Conv2d_BN 1x1)
    down = sorted(int(k.split(".")[1]) for k in off if k.endswith("token_mixer.2.c.weight"))
    assert tuple(down) == strided
    for i, r in enumerate(strided):
        assert _shape(off, f"features.{r}.token_mixer.0.c.weight") == (w[i], 1, 3, 3)
        assert _shape(off, f"features.{r}.token_mixer.2.c.weight") == (w[i + 1], w[i], 1, 1)
        assert _shape(off, f"features.{r}.channel_mixer.m.0.c.weight") == \
            (2 * w[i + 1], w[i + 1], 1, 1)
        assert f"features.{r - 1}.token_mixer.0.conv.c.weight" in off  # the row before: a RepVGGDW
    # Classfier: classifier (+ classifier_dist if distillation), BN_Linear = bn + l
    assert _shape(off, "classifier.classifier.l.weight") == (1000, w[-1])
    assert _shape(off, "classifier.classifier.bn.running_mean") == (w[-1],)
    assert ("classifier.classifier_dist.l.bias" in off) == distilled


def _check_mobilevit(name, off):
    # MobileViT.conv_1 = ConvLayer2d(3, 16, 3, stride 2): block.conv + block.norm (+ act)
    if name in MOBILEVIT_V1:
        stem, c3, d3, head = MOBILEVIT_V1[name]
        assert _shape(off, "conv_1.block.conv.weight") == (stem, 3, 3, 3)
        # InvertedResidual.block.{exp_1x1, conv_3x3, red_1x1}, each a ConvLayer2d
        assert "layer_1.0.block.exp_1x1.block.norm.running_mean" in off
        assert "layer_2.2.block.red_1x1.block.conv.weight" in off
        # MobileViTBlock: local_rep.{conv_3x3, conv_1x1 (no norm, no bias)}
        assert _shape(off, "layer_3.1.local_rep.conv_3x3.block.conv.weight") == (c3, c3, 3, 3)
        assert _shape(off, "layer_3.1.local_rep.conv_1x1.block.conv.weight") == (d3, c3, 1, 1)
        assert "layer_3.1.local_rep.conv_1x1.block.conv.bias" not in off
        # TransformerEncoder.pre_norm_mha = (LayerNorm, MultiHeadAttention(qkv_proj, out_proj
        # LinearLayers), Dropout); pre_norm_ffn = (LN, Linear, act, Dropout, Linear, Dropout)
        assert _shape(off, "layer_3.1.global_rep.0.pre_norm_mha.0.weight") == (d3,)
        assert _shape(off, "layer_3.1.global_rep.0.pre_norm_mha.1.qkv_proj.weight") == (3 * d3, d3)
        assert _shape(off, "layer_3.1.global_rep.0.pre_norm_mha.1.out_proj.bias") == (d3,)
        assert _shape(off, "layer_3.1.global_rep.1.pre_norm_ffn.1.weight") == (2 * d3, d3)
        assert _shape(off, "layer_3.1.global_rep.1.pre_norm_ffn.4.weight") == (d3, 2 * d3)
        # global_rep ends with the norm after transformer_blocks (2, 4, 3) encoders
        for layer, depth in ((3, 2), (4, 4), (5, 3)):
            assert f"layer_{layer}.1.global_rep.{depth}.weight" in off
            assert f"layer_{layer}.1.global_rep.{depth}.pre_norm_mha.0.weight" not in off
        # conv_proj (1x1, norm + act) and fusion (3x3 on the 2C concat)
        assert _shape(off, "layer_3.1.conv_proj.block.conv.weight") == (c3, d3, 1, 1)
        assert _shape(off, "layer_3.1.fusion.block.conv.weight") == (c3, 2 * c3, 3, 3)
        # conv_1x1_exp = ConvLayer2d(C5, min(4 * C5, 960));
        # classifier = Sequential(global_pool, [dropout,] fc)
        assert _shape(off, "conv_1x1_exp.block.conv.weight")[0] == head
        assert _shape(off, "classifier.fc.weight") == (1000, head)
        return
    # mobilevit_v2.py + config/mobilevit_v2.py, width multiplier from the name
    w = int(name.rsplit("_", 1)[1]) / 100
    stem = int(_cvnets_divisible(max(16, min(64, 32 * w)), 8))
    c3, d3 = int(_cvnets_divisible(256 * w)), int(_cvnets_divisible(128 * w))
    c5 = int(_cvnets_divisible(512 * w))
    assert _shape(off, "conv_1.block.conv.weight") == (stem, 3, 3, 3)
    # MobileViTBlockv2.local_rep = Sequential(depthwise ConvLayer2d 3x3, ConvLayer2d 1x1 no norm)
    assert _shape(off, "layer_3.1.local_rep.0.block.conv.weight") == (c3, 1, 3, 3)
    assert _shape(off, "layer_3.1.local_rep.1.block.conv.weight") == (d3, c3, 1, 1)
    # LinearAttnFFN.pre_norm_attn = (layer_norm_2d = GroupNorm(1, C), LinearSelfAttention, Dropout)
    assert _shape(off, "layer_3.1.global_rep.0.pre_norm_attn.0.weight") == (d3,)
    # LinearSelfAttention.qkv_proj = ConvLayer2d(C, 1 + 2C, 1, bias=True); out_proj C -> C
    assert _shape(off, "layer_3.1.global_rep.0.pre_norm_attn.1.qkv_proj.block.conv.weight") == \
        (1 + 2 * d3, d3, 1, 1)
    assert _shape(off, "layer_3.1.global_rep.0.pre_norm_attn.1.out_proj.block.conv.bias") == (d3,)
    # pre_norm_ffn = (norm, ConvLayer2d(C, ffn), Dropout, ConvLayer2d(ffn, C), Dropout); ffn = 2C
    # rounded down to a multiple of 16
    assert _shape(off, "layer_3.1.global_rep.1.pre_norm_ffn.1.block.conv.weight") == \
        (2 * d3 // 16 * 16, d3, 1, 1)
    assert _shape(off, "layer_3.1.global_rep.1.pre_norm_ffn.3.block.conv.bias") == (d3,)
    for layer, depth in ((3, 2), (4, 4), (5, 3)):  # attn_blocks, then the final norm
        assert f"layer_{layer}.1.global_rep.{depth}.bias" in off
    # conv_proj: ConvLayer2d 1x1 with norm, no act; no fusion; conv_1x1_exp is an Identity;
    # classifier = Sequential(GlobalPool, LinearLayer)
    assert _shape(off, "layer_3.1.conv_proj.block.norm.weight") == (c3,)
    assert not any(".fusion." in k or k.startswith("conv_1x1_exp.") for k in off)
    assert _shape(off, "classifier.1.weight") == (1000, c5)


CASES = [(n, True) for n in NAMES] + [("repvit_m0_9", False), ("repvit_m1_1", False)]


@pytest.mark.parametrize("name, distilled", CASES)
def test_official_mobile_round_trip(name, distilled, tmp_path):
    torch.manual_seed(0)
    family = get_entry(name).family
    kwargs = {} if distilled else {"distilled": False}
    src = randomize_bn(ev.create_model(name, **kwargs)).eval()
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    off = official.to_official(src.state_dict(), src)
    if family == "repvit":
        _check_repvit(name, off, distilled)
    else:
        _check_mobilevit(name, off)
    assert [f(off) for f in sorted(MINE, key=lambda f: f.__name__)].count(True) == 1
    assert official.detect_official(off) is official.layout_for(src)
    torch.save({"model": off}, tmp_path / "official.pth")
    dst = ev.create_model(name, **kwargs).eval()
    assert ev.load_weights(dst, tmp_path / "official.pth").source == "official"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        a, b = src(x), dst(x)
    assert torch.isfinite(a).all() and torch.equal(a, b)


def _smallest(family):
    names = [n for n in ev.list_models() if get_entry(n).family == family]
    ref = reference_figures()
    return min(names, key=lambda n: (ref[n].macs_millions if n in ref else float("inf"), n))


def test_looks_like_is_exclusive():
    samples = {}
    for name in ("repvit_m0_9", "mobilevit_xxs", "mobilevitv2_050"):
        samples[f"edgevision:{name}"] = ev.create_model(name).state_dict()
    timm = pytest.importorskip("timm")
    for name in ("repvit_m0_9", "mobilevit_xxs", "mobilevitv2_050"):
        samples[f"timm:{name}"] = timm.create_model(name, pretrained=False).state_dict()
    tv = pytest.importorskip("torchvision")
    samples["torchvision:mobilenet_v2"] = tv.models.mobilenet_v2().state_dict()
    own = {"THU-MIG/RepViT", "apple/ml-cvnets MobileViT", "apple/ml-cvnets MobileViTv2"}
    for lay in official._LAYOUTS:  # every other registered official layout
        if lay.name in own:
            continue
        for family in lay.families:
            model = ev.create_model(_smallest(family))
            samples[f"{lay.name}:{family}"] = lay.to_official(model.state_dict(), model)
    for what, sd in samples.items():
        for looks_like in MINE:
            assert not looks_like(sd), f"{looks_like.__name__} claims {what}"
    for name in ("repvit_m0_9", "mobilevit_xxs", "mobilevitv2_050"):  # and the other way round
        model = ev.create_model(name)
        off = official.to_official(model.state_dict(), model)
        claimed = [lay.name for lay in official._LAYOUTS if lay.looks_like(off)]
        assert claimed == [official.layout_for(model).name], (name, claimed)


def _official_file(name, tmp_path, **kwargs):
    model = ev.create_model(name, **kwargs)
    path = tmp_path / f"{name}.pth"
    torch.save({"model": official.to_official(model.state_dict(), model)}, path)
    return path


def test_wrong_family_official_checkpoint(tmp_path):
    v2 = _official_file("mobilevitv2_050", tmp_path)
    with pytest.raises(WeightsError, match="MobileViTv2"):  # names the layout it does look like
        ev.load_weights(ev.create_model("mobilevit_xxs"), v2, source="official")
    with pytest.raises(WeightsError):
        ev.load_weights(ev.create_model("repvit_m0_9"), v2)
    # a distilled RepViT checkpoint into a single-head model: the classifier_dist key is refused
    distilled = _official_file("repvit_m0_9", tmp_path)
    with pytest.raises(WeightsError, match="classifier_dist.*distilled=True"):
        ev.load_weights(ev.create_model("repvit_m0_9", distilled=False), distilled)
    # unknown key
    with pytest.raises(WeightsError, match="features.0.9.c.weight"):
        om.repvit_to_ours({"features.0.9.c.weight": torch.zeros(1)}, ev.create_model("repvit_m0_9"))
