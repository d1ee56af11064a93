"""Converters from torchvision and efficientnet_pytorch: their model with random weights and
randomized BN statistics, converted, must give the same logits (<= 1e-5, fp32, eval)."""
import pytest
import torch

import edgevision as ev
from edgevision.weights.sources import create_for_source

from conftest import randomize_bn

torchvision = pytest.importorskip("torchvision")

TV = [("mobilenet_v2", "mobilenetv2_100"), ("mobilenet_v3_large", "mobilenetv3_large_100"),
      ("mobilenet_v3_small", "mobilenetv3_small_100"), ("efficientnet_b0", "efficientnet_b0"),
      ("efficientnet_b1", "efficientnet_b1"),
      pytest.param("efficientnet_b3", "efficientnet_b3", marks=pytest.mark.slow),
      pytest.param("efficientnet_b7", "efficientnet_b7", marks=pytest.mark.slow),
      ("efficientnet_v2_s", "tf_efficientnetv2_s"),
      pytest.param("efficientnet_v2_m", "tf_efficientnetv2_m", marks=pytest.mark.slow),
      pytest.param("efficientnet_v2_l", "tf_efficientnetv2_l", marks=pytest.mark.slow)]


def _compare(ref, ours, size, tol=1e-5):
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        a, b = ref(x), ours(x)
    assert (a - b).abs().max().item() <= tol * max(1.0, a.abs().max().item())


@pytest.mark.parametrize("tv_name, name", TV)
def test_torchvision_weights(tv_name, name, tmp_path):
    torch.manual_seed(0)
    ref = randomize_bn(getattr(torchvision.models, tv_name)()).eval()
    torch.save(ref.state_dict(), tmp_path / "tv.pth")
    ours = create_for_source(name, "torchvision", channels_last=False).eval()
    assert ev.load_weights(ours, tmp_path / "tv.pth").source == "torchvision"  # auto-detected
    _compare(ref, ours, 128)


@pytest.mark.parametrize("variant", ["b0", "b1", pytest.param("b4", marks=pytest.mark.slow)])
def test_efficientnet_pytorch_weights(variant, tmp_path):
    efficientnet_pytorch = pytest.importorskip("efficientnet_pytorch")
    torch.manual_seed(0)
    ref = efficientnet_pytorch.EfficientNet.from_name(f"efficientnet-{variant}")
    ref.set_swish(memory_efficient=False)
    ref = randomize_bn(ref).eval()
    torch.save(ref.state_dict(), tmp_path / "ep.pth")
    ours = create_for_source(f"efficientnet_{variant}", "efficientnet_pytorch", channels_last=False).eval()
    assert ev.load_weights(ours, tmp_path / "ep.pth").source == "efficientnet_pytorch"
    _compare(ref, ours, ours.input_config.resolution)


def test_efficientnet_pytorch_layout_lite_without_se(tmp_path):
    """Lite checkpoints in the efficientnet_pytorch layout have no _se_* keys."""
    torch.manual_seed(0)
    src = randomize_bn(ev.create_model("tf_efficientnet_lite0", channels_last=False)).eval()
    sd = {}
    o = src.state_dict()

    def put(prefix, mod_prefix):
        for k, v in o.items():
            if k.startswith(mod_prefix + "."):
                sd[prefix + k[len(mod_prefix):]] = v
    put("_conv_stem", "stem.conv"); put("_bn0", "stem.bn")
    i = 0
    for s, stage in enumerate(src.stages):
        for b, block in enumerate(stage):
            names = [n for n, _ in block.named_children() if n not in ("se", "drop_path")]
            ep = {"conv_pw": ("_expand_conv", "_bn0"), "conv_dw": ("_depthwise_conv", "_bn1"),
                  "conv_pwl": ("_project_conv", "_bn2")} if "conv_pwl" in names else \
                 {"conv_dw": ("_depthwise_conv", "_bn1"), "conv_pw": ("_project_conv", "_bn2")}
            for ours, (conv, bn) in ep.items():
                put(f"_blocks.{i}.{conv}", f"stages.{s}.{b}.{ours}.conv")
                put(f"_blocks.{i}.{bn}", f"stages.{s}.{b}.{ours}.bn")
            i += 1
    put("_conv_head", "head_conv.conv"); put("_bn1", "head_conv.bn"); put("_fc", "classifier")
    torch.save(sd, tmp_path / "lite.pth")
    dst = ev.create_model("tf_efficientnet_lite0", channels_last=False).eval()
    assert ev.load_weights(dst, tmp_path / "lite.pth").source == "efficientnet_pytorch"
    _compare(src, dst, 224, tol=0)


def test_torchvision_weights_refuse_wrong_variant(tmp_path):
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), tmp_path / "s.pth")
    with pytest.raises(ev.WeightsError):
        ev.load_weights(create_for_source("mobilenetv3_large_100", "torchvision"), tmp_path / "s.pth",
                        source="torchvision")


def test_cli_convert_then_predict_keeps_source_architecture(tmp_path, capsys):
    from edgevision.cli import main
    from edgevision.images import synthetic_image
    from edgevision.weights import create_with_weights
    torch.manual_seed(0)
    ref = randomize_bn(torchvision.models.mobilenet_v3_small()).eval()
    torch.save(ref.state_dict(), tmp_path / "tv.pth")
    out = tmp_path / "conv.safetensors"
    assert main(["convert", str(tmp_path / "tv.pth"), "--model", "mobilenetv3_small_100", "-o", str(out)]) == 0
    assert "torchvision -> edgevision" in capsys.readouterr().out
    model = create_with_weights("mobilenetv3_small_100", out)  # bn_eps=1e-3 restored from metadata
    assert model.spec.bn_eps == 1e-3 and model.input_config.interpolation == "bilinear"
    _compare(ref, model, 96)
    img = synthetic_image(0, 200)
    img.convert("L").save(tmp_path / "grey.png")
    img.convert("RGBA").save(tmp_path / "rgba.webp")
    img.save(tmp_path / "rgb.jpg")
    assert main(["predict", str(tmp_path / "grey.png"), str(tmp_path / "rgba.webp"), str(tmp_path / "rgb.jpg"),
                 "--model", "mobilenetv3_small_100", "--weights", str(out), "--json", "--topk", "3"]) == 0
    import json
    res = json.loads(capsys.readouterr().out)
    assert len(res) == 3 and all(len(r["top"]) == 3 for r in res)
    from edgevision.predict import imagenet_classes
    assert res[0]["top"][0]["class"] in imagenet_classes() and len(imagenet_classes()) == 1000
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    assert main(["predict", str(tmp_path / "broken.jpg"), "--model", "mobilenetv3_small_100",
                 "--weights", str(out)]) == 2
    assert "cannot read image" in capsys.readouterr().err


@pytest.mark.parametrize("tv_name, name", [("convnext_tiny", "convnext_tiny"),
                                           pytest.param("convnext_base", "convnext_base", marks=pytest.mark.slow)])
def test_torchvision_convnext(tv_name, name, tmp_path):
    torch.manual_seed(0)
    ref = getattr(torchvision.models, tv_name)().eval()
    with torch.no_grad():
        for n, p in ref.named_parameters():
            if n.endswith("layer_scale"):
                p.uniform_(0.5, 1.5)  # the 1e-6 init would hide a mis-mapped block
    torch.save(ref.state_dict(), tmp_path / "tv.pth")
    ours = ev.create_model(name, channels_last=False).eval()
    assert ev.load_weights(ours, tmp_path / "tv.pth").source == "torchvision"
    _compare(ref, ours, 96)


@pytest.mark.parametrize("name", ["convnext_atto", "convnextv2_atto"])
def test_official_convnext_layout_round_trip(name, tmp_path):
    """Key names and shapes of facebookresearch/ConvNeXt(-V2) checkpoints, reproduced from their
    model code (downsample_layers, dwconv, pwconv1/2, gamma, grn.gamma/beta (1,1,1,C), norm, head)."""
    from edgevision.weights.convnext_layouts import to_official
    torch.manual_seed(0)
    src = ev.create_model(name).eval()
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    off = to_official(src.state_dict())
    assert "downsample_layers.0.0.weight" in off and "stages.0.0.pwconv1.weight" in off
    if name.startswith("convnextv2"):
        assert off["stages.0.0.grn.gamma"].shape == (1, 1, 1, 160)
    torch.save({"model": off}, tmp_path / "official.pth")
    dst = ev.create_model(name).eval()
    assert ev.load_weights(dst, tmp_path / "official.pth").source == "official"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))
