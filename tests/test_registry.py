import dataclasses

import pytest
import torch

import edgevision as ev
from edgevision.errors import ConfigError, UnknownModelError
from edgevision.registry import get_entry, reference_figures, register


def test_every_reference_model_is_registered_or_pending():
    names = set(ev.list_models())
    assert {"mobilenetv3_large_100", "efficientnet_b0", "tf_efficientnet_lite0",
            "tf_efficientnetv2_s", "mobilenetv4_conv_small", "mobilenetv1_100"} <= names
    # everything registered has reference figures (the tests compare against them)
    assert names <= set(reference_figures()) | {n for n in names if get_entry(n).description}


def test_list_models_filters():
    effs = ev.list_models(family="efficientnet")
    assert effs == [f"efficientnet_b{i}" for i in range(8)] + [f"tf_efficientnet_b{i}" for i in range(9)]
    assert ev.list_models("tf_*lite*") == [f"tf_efficientnet_lite{i}" for i in range(5)]
    assert ev.list_models("lite") == ev.list_models("*lite*")  # bare pattern = substring
    assert ev.list_models("mobilenetv3_*_100", family="mobilenetv3") == [
        "mobilenetv3_large_100", "mobilenetv3_small_100"]
    with pytest.raises(UnknownModelError, match="efficientnet"):
        ev.list_models(family="efficientnett")


def test_unknown_model_suggests_close_matches():
    with pytest.raises(UnknownModelError) as e:
        ev.create_model("efficientnet_b9")
    msg = str(e.value)
    assert "efficientnet_b" in msg and "Did you mean" in msg


def test_duplicate_registration_refused():
    entry = get_entry("efficientnet_b0")
    with pytest.raises(ValueError, match="already registered"):
        register("efficientnet_b0", entry.family, entry.spec, entry.builder)


def test_spec_is_frozen_and_scaling_is_a_method():
    spec = get_entry("efficientnet_b0").spec
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.width = 2.0
    b2 = get_entry("efficientnet_b2").spec
    assert spec.scaled(width=1.1, depth=1.2) == b2
    # channels grow with width, blocks with depth
    m0 = ev.create_model("efficientnet_b0", num_classes=0)
    m2 = ev.create_model("efficientnet_b0", num_classes=0, width=1.1, depth=1.2)
    assert ev.count_params(m2) == ev.count_params(ev.create_model("efficientnet_b2", num_classes=0))
    assert sum(len(s) for s in m2.stages) > sum(len(s) for s in m0.stages)


def test_unknown_spec_override_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown argument.*wdith"):
        ev.create_model("mobilenetv2_100", wdith=1.0)


def test_input_config_travels_with_the_model():
    m = ev.create_model("tf_efficientnet_lite0")
    assert m.input_config.mean == (0.5, 0.5, 0.5)
    assert m.input_config.input_size == (3, 224, 224)
    m = ev.create_model("efficientnet_b3", in_chans=1)
    assert m.input_config.input_size == (1, 300, 300) and len(m.input_config.mean) == 1


def test_out_indices_validation():
    with pytest.raises(ConfigError, match="out of range"):
        ev.create_model("mobilenetv2_100", features_only=True, out_indices=(0, 7))
    fm = ev.create_model("mobilenetv2_100", features_only=True, out_indices=(-1,))
    assert [f.reduction for f in fm.feature_info] == [32]
    with pytest.raises(ConfigError):
        ev.create_model("mobilenetv2_100", out_indices=(1,))
