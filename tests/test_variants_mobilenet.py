"""Anti-aliased downsampling (layers/aa.py) as the MobileNetV4 blur/aa variants use it; their
timm parity, parameter counts and MACs are covered by the registry-wide tests."""
from dataclasses import replace

import pytest
import torch

from edgevision.errors import ConfigError
from edgevision.layers import ConvNormAct
from edgevision.layers.aa import BlurPool2d
from edgevision.models.mbnet import MBNet
from edgevision.registry import get_entry


def test_blur_pool_keeps_a_constant_map_inside_and_halves_the_size():
    x = torch.ones(1, 3, 9, 8)
    y = BlurPool2d(3)(x)
    assert y.shape == (1, 3, 5, 4)  # ceil(size / 2), as a stride-2 3x3 conv
    assert torch.allclose(y[..., 1:-1, 1:-1], torch.ones(1, 3, 3, 2))  # taps sum to 1
    assert y[0, 0, 0, 0].item() == pytest.approx(9 / 16)  # zero padding at the corner


def test_anti_aliased_conv_runs_at_stride_one_then_pools():
    c = ConvNormAct(4, 8, 3, stride=2, aa="avg")
    assert c.conv.stride == (1, 1) and isinstance(c.aa, torch.nn.AvgPool2d)
    assert c(torch.randn(1, 4, 16, 16)).shape == (1, 8, 8, 8)
    assert ConvNormAct(4, 8, 3, stride=1, aa="blur").aa is None  # nothing to anti-alias


def test_unknown_anti_aliasing_is_a_config_error():
    spec = replace(get_entry("mobilenetv4_conv_blur_medium").spec, aa="max")
    with pytest.raises(ConfigError, match="unknown anti-aliasing 'max'.*avg, blur"):
        MBNet(spec)
