"""Views of the photos installed packages ship: found at run time, deterministic, disjoint per
split, preprocessed the model's way for calibration (``--calib photos``)."""
import numpy as np
import pytest

import edgevision as ev
from edgevision.datasets import PhotoViews, find_photos
from edgevision.datasets import photos as photos_module
from edgevision.deploy.calibration import calibration_images
from edgevision.deploy.quantize import QuantRecipe, quantize
from edgevision.errors import ConfigError


def test_finds_the_photos_installed_packages_ship():
    found = find_photos()
    assert found[0].name == "grace_hopper.jpg"  # matplotlib is a dependency of edgevision
    assert all(p.is_file() for p in found) and len(set(found)) == len(found)
    for package, rel in photos_module.SHIPPED:  # every shipped photo of an installed package
        root = photos_module._package_dir(package)
        assert (root is None or not (root / rel).is_file()) or root / rel in found


def test_no_photo_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv("EDGEVISION_PHOTOS", raising=False)
    monkeypatch.setattr(photos_module, "SHIPPED", (("no_such_package_xyz", "a.jpg"),))
    with pytest.raises(ConfigError, match="no photo found"):
        find_photos()
    with pytest.raises(ConfigError, match="no photo found"):
        calibration_images("photos", ev.create_model("mobilenetv3_small_075").input_config, (32, 32), 2)
    with pytest.raises(ConfigError, match="does not exist"):
        find_photos([tmp_path / "missing"])


def test_views_are_deterministic_varied_and_disjoint_between_splits():
    calib, again, test = PhotoViews("calib", 12), PhotoViews("calib", 12), PhotoViews("test", 12)
    a = [np.asarray(calib.view(i)) for i in range(12)]
    assert all(np.array_equal(x, np.asarray(again.view(i))) for i, x in enumerate(a))
    assert len({x.shape for x in a}) > 6  # crops of many sizes and aspects
    t = [np.asarray(test.view(i)) for i in range(12)]
    assert not any(x.shape == y.shape and np.array_equal(x, y) for x in a for y in t)
    x, photo = calib[4]
    assert x.shape[0] == 3 and 0 <= float(x.min()) and float(x.max()) <= 1
    assert photo == 4 % len(calib.photos)
    with pytest.raises(ConfigError, match="split"):
        PhotoViews("holdout", 4)


def test_extra_folders_add_photos(tmp_path, monkeypatch):
    from PIL import Image
    Image.new("RGB", (80, 60), (200, 10, 10)).save(tmp_path / "red.png")
    found = find_photos([tmp_path])
    assert found[-1] == tmp_path / "red.png" and len(found) > 1
    monkeypatch.setenv("EDGEVISION_PHOTOS", str(tmp_path))
    assert find_photos() == found
    unpacked = tmp_path / "wheel" / "skimage" / "data"  # a package unpacked, not installed
    unpacked.mkdir(parents=True)
    for name in ("chelsea.png", "logo.png"):
        Image.new("RGB", (80, 60)).save(unpacked / name)
    assert find_photos([tmp_path / "wheel"])[-1:] == [unpacked / "chelsea.png"]  # photos only
    views = PhotoViews("calib", 3, photos=[tmp_path / "red.png"])
    assert all(np.asarray(views.view(i))[..., 0].mean() > 150 for i in range(3))


def test_calibration_images_from_photos_follow_the_model_preprocessing():
    cfg = ev.create_model("mobilenetv3_small_075").input_config
    cal = calibration_images("photos", cfg, (48, 40), 6)
    test = calibration_images("photos", cfg, (48, 40), 6, split="test")
    assert cal.shape == (6, 3, 48, 40) and cal.dtype == np.float32
    assert np.array_equal(cal, calibration_images("photos", cfg, (48, 40), 6))
    assert not any(np.array_equal(c, t) for c in cal for t in test)
    # normalised with the model's mean/std: real photos span roughly [-2, 2.6] with ImageNet stats
    assert cal.min() < -1 and cal.max() > 1


def test_quantize_calibrates_on_photos(tmp_path):
    model = ev.create_model("mobilenetv3_small_075", num_classes=10).eval()
    pytest.importorskip("onnxruntime")
    from edgevision.deploy.export import export
    export(model, tmp_path / "fp32.onnx", resolution=(64, 64), dynamic_batch=True)
    r = quantize(tmp_path / "fp32.onnx", tmp_path / "int8.onnx",
                 QuantRecipe(calib="photos", images=4, held_out=6))
    assert r.calib_images == 4 and r.held_out == 6 and (tmp_path / "int8.onnx").is_file()
