"""Registry-wide checks of the model contract: every registered model, same assertions."""
import pytest
import torch

import edgevision as ev
from edgevision.bench import count_macs
from edgevision.errors import InputShapeError
from edgevision.registry import get_entry, reference_figures

from conftest import ALL_MODELS, registry_param, randomize_bn, small_size

REF = reference_figures()
HAS_REF = [n for n in ALL_MODELS if n in REF]


@pytest.mark.parametrize("name", HAS_REF)
def test_param_count_matches_reference(name):
    with torch.device("meta"):
        model = ev.create_model(name)
    assert ev.count_params(model) == REF[name].params


@pytest.mark.parametrize("name", HAS_REF)
def test_macs_within_one_percent(name):
    # the reference table does not count the products inside fused attention kernels
    macs = count_macs(name, REF[name].resolution, fused_attention=False) / 1e6
    assert abs(macs - REF[name].macs_millions) <= 0.01 * REF[name].macs_millions, macs


@pytest.mark.parametrize("name", [registry_param(n) for n in ALL_MODELS])
def test_forward_shapes_two_sizes_and_determinism(name):
    torch.manual_seed(0)
    model = randomize_bn(ev.create_model(name, num_classes=7)).eval()
    s = small_size(name)
    for h, w in ((s, s), (s + 32, s)):  # square and non-square
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            y1, y2 = model(x), model(x)
        assert y1.shape == (1, 7)
        assert torch.isfinite(y1).all()
        assert torch.equal(y1, y2), "eval forward is not deterministic"
        feat = model.forward_features(x)
        pre = model.forward_head(feat, pre_logits=True)
        assert pre.shape == (1, model.num_features)


@pytest.mark.parametrize("name", [registry_param(n) for n in ALL_MODELS])
def test_backward_reaches_every_parameter(name):
    torch.manual_seed(0)
    model = ev.create_model(name, num_classes=5, drop_path_rate=0.1).train()
    s = small_size(name)
    model(torch.randn(2, 3, s, s)).logsumexp(1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and
               (p.grad is None or not torch.isfinite(p.grad).all())]
    assert not missing, f"no/invalid gradient for {missing[:5]}"


@pytest.mark.parametrize("name", [registry_param(n) for n in ALL_MODELS])
def test_feature_info_matches_feature_maps(name):
    fm = ev.create_model(name, features_only=True).eval()
    info = fm.feature_info
    assert len(info) >= 3
    s = small_size(name)
    for h, w in ((s, s), (s * 2, s + 32)):
        with torch.no_grad():
            feats = fm(torch.randn(1, 3, h, w))
        assert len(feats) == len(info)
        for f, fi in zip(feats, info):
            assert f.shape[1] == fi.channels, (fi, f.shape)
            # reduction: output size is ceil(input / reduction) (or floor for unpadded stems)
            assert f.shape[2] in (-(-h // fi.reduction), h // fi.reduction), (fi, f.shape, h)
            assert f.shape[3] in (-(-w // fi.reduction), w // fi.reduction), (fi, f.shape, w)
    # a subset of levels, in the order asked
    sub = ev.create_model(name, features_only=True, out_indices=(-1, 1)).eval()
    with torch.no_grad():
        a, b = sub(torch.randn(1, 3, s, s))
    assert a.shape[1] == info[-1].channels and b.shape[1] == info[1].channels


@pytest.mark.parametrize("name", [registry_param(n) for n in ALL_MODELS])
def test_classifier_reset_and_in_chans(name):
    model = ev.create_model(name, in_chans=1, num_classes=3).eval()
    s = small_size(name)
    x = torch.randn(1, 1, s, s)
    with torch.no_grad():
        assert model(x).shape == (1, 3)
        model.reset_classifier(0)
        assert model(x).shape == (1, model.num_features)
        model.reset_classifier(11)
        assert model(x).shape == (1, 11)


@pytest.mark.parametrize("name", ["mobilenetv3_small_100", "efficientnet_b0", "mobilenetv4_conv_small",
                                  "tf_efficientnet_lite0"])
def test_bad_inputs_raise_clear_errors(name):
    model = ev.create_model(name).eval()
    with pytest.raises(InputShapeError, match="3 input channels but got 4"):
        model(torch.randn(1, 4, 64, 64))
    m = model.min_input_size
    with pytest.raises(InputShapeError, match=f"at least {m}"):
        model(torch.randn(1, 3, m - 1, 64))
    with pytest.raises(InputShapeError, match="4-D"):
        model(torch.randn(3, 64, 64))


def test_tf_same_padding_is_asymmetric_like_tensorflow():
    from edgevision.layers import create_conv2d
    conv = create_conv2d(1, 1, 3, stride=2, padding="same")
    torch.nn.init.ones_(conv.weight)
    y = conv(torch.ones(1, 1, 4, 4))
    # TF SAME on 4x4, k3 s2: total pad 1 -> 0 top/left, 1 bottom/right
    assert y.shape == (1, 1, 2, 2)
    assert y[0, 0, 0, 0].item() == 9.0 and y[0, 0, 1, 1].item() == 4.0


def test_drop_path_is_active_only_in_training():
    model = ev.create_model("efficientnet_b0", drop_path_rate=0.5, num_classes=4)
    x = torch.randn(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    b = model(x)
    assert not torch.allclose(a, b)
