"""Weight files: safe reading, atomic writing, clear errors."""
import os
import pickle

import pytest
import torch

import edgevision as ev
from edgevision.errors import WeightsError
from edgevision.files import atomic_write

from conftest import randomize_bn


def _model(name="mobilenetv3_small_075", **kw):
    torch.manual_seed(0)
    return randomize_bn(ev.create_model(name, **kw)).eval()


def test_safetensors_roundtrip_carries_metadata(tmp_path):
    src = _model()
    path = ev.save_weights(src, tmp_path / "w.safetensors")
    dst = ev.create_model("mobilenetv3_small_075").eval()
    report = ev.load_weights(dst, path)
    assert report.source == "edgevision"
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))
    from edgevision.weights import read_state_dict
    _, meta = read_state_dict(path)
    assert meta["model"] == "mobilenetv3_small_075" and "mean" in meta["input_config"]


def test_nested_and_prefixed_checkpoints_are_unwrapped(tmp_path):
    src = _model()
    sd = {f"module.{k}": v for k, v in src.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": sd}, tmp_path / "ckpt.pth")
    dst = ev.create_model("mobilenetv3_small_075").eval()
    ev.load_weights(dst, tmp_path / "ckpt.pth")
    assert torch.equal(dst.classifier.weight, src.classifier.weight)


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_code_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    evil = _Evil()
    evil.marker = marker
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"weight": evil}, f)
    with pytest.raises(WeightsError, match="refused"):
        ev.load_weights(ev.create_model("mobilenetv3_small_075"), path)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_truncated_file_is_a_clear_error(tmp_path, suffix):
    src = _model()
    full = tmp_path / f"full{suffix}"
    if suffix == ".pth":
        torch.save(src.state_dict(), full)
    else:
        ev.save_weights(src, full)
    data = full.read_bytes()
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(WeightsError, match="not a readable"):
        ev.load_weights(ev.create_model("mobilenetv3_small_075"), bad)


def test_not_a_weight_file(tmp_path):
    p = tmp_path / "notes.pth"
    p.write_text("hello")
    with pytest.raises(WeightsError):
        ev.load_weights(ev.create_model("mobilenetv3_small_075"), p)
    with pytest.raises(WeightsError, match="does not exist"):
        ev.load_weights(ev.create_model("mobilenetv3_small_075"), tmp_path / "missing.pth")


def test_weights_of_another_architecture_are_refused(tmp_path):
    ev.save_weights(_model("mobilenetv2_100"), tmp_path / "v2.safetensors")
    with pytest.raises(WeightsError, match="do not fit mobilenetv3_small_075"):
        ev.load_weights(ev.create_model("mobilenetv3_small_075"), tmp_path / "v2.safetensors",
                        source="edgevision")


def test_new_head_with_strict_false(tmp_path):
    ev.save_weights(_model(), tmp_path / "w.safetensors")
    dst = ev.create_model("mobilenetv3_small_075", num_classes=10)
    with pytest.raises(WeightsError, match="strict=False"):
        ev.load_weights(dst, tmp_path / "w.safetensors")
    report = ev.load_weights(dst, tmp_path / "w.safetensors", strict=False)
    assert set(report.skipped) == {"classifier.weight", "classifier.bias"}
    assert report.loaded == len(dst.state_dict()) - 2


def test_features_only_model_loads_full_weights(tmp_path):
    src = _model()
    ev.save_weights(src, tmp_path / "w.safetensors")
    fm = ev.create_model("mobilenetv3_small_075", features_only=True).eval()
    ev.load_weights(fm, tmp_path / "w.safetensors")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(fm(x)[-1], src.forward_features(x))


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"good")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("crash mid-write")
    assert target.read_bytes() == b"good"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
