"""Training: losses, exact resume, progressive learning, distributed, bad input."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import edgevision as ev
from edgevision.datasets import CLASSES, EmbeddedShapes
from edgevision.errors import EdgeVisionError, WeightsError
from edgevision.train import ProgressiveConfig, TrainConfig, train
from edgevision.train.loop import TrainingDiverged, no_decay
from edgevision.train.losses import distillation_loss, kd_soft

TINY = dict(model="mobilenetv3_small_075", epochs=2, batch_size=16, train_size=64, val_size=32,
            resolution=32, workers=0, lr=1e-3, warmup_epochs=0.5)


def _epochs(out):
    return [json.loads(l) for l in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def test_soft_distillation_loss_matches_hand_computation():
    s = torch.tensor([[2.0, 0.0, -1.0]])
    t = torch.tensor([[1.0, 1.5, -0.5]])
    T = 2.0
    ps, pt = torch.softmax(s / T, -1), torch.softmax(t / T, -1)
    kl = (pt * (pt.log() - ps.log())).sum().item() * T * T
    assert kd_soft(s, t, T).item() == pytest.approx(kl, rel=1e-5)
    target = F.one_hot(torch.tensor([0]), 3).float()
    ce = -torch.log_softmax(s, -1)[0, 0].item()
    total = distillation_loss(s, target, t, "soft", alpha=0.3, temperature=T).item()
    assert total == pytest.approx(0.7 * ce + 0.3 * kl, rel=1e-5)
    # hard: the distillation head learns the teacher's argmax (class 1), the class head the label
    hard = distillation_loss((s, s * 0.5), target, t, "hard", alpha=0.5, temperature=T).item()
    ce_dist = -torch.log_softmax(s * 0.5, -1)[0, 1].item()
    assert hard == pytest.approx(0.5 * ce + 0.5 * ce_dist, rel=1e-5)


def test_weight_decay_skips_norm_bias_and_scales():
    model = ev.create_model("mobilenetv4_conv_small")
    names = {n for n, p in model.named_parameters() if no_decay(n, p)}
    assert "stem.bn.weight" in names and "classifier.bias" in names
    assert "stem.conv.weight" not in names and "classifier.weight" not in names


def test_zero_init_starts_at_uniform_predictions():
    from edgevision.train.loop import zero_init
    model = ev.create_model("mobilenetv3_small_075", num_classes=12)
    zero_init(model)
    with torch.no_grad():
        logits = model.train()(torch.randn(4, 3, 64, 64))
    assert torch.allclose(logits, torch.zeros_like(logits))  # loss starts at ln(12)
    blk = model.stages[2][1]  # a residual inverted-residual block
    assert blk.has_skip and torch.count_nonzero(blk.conv_pwl.bn.weight) == 0


def test_embedded_dataset_is_deterministic_and_balanced():
    a, b = EmbeddedShapes("val", 24, 48, seed=3), EmbeddedShapes("val", 24, 48, seed=3)
    assert torch.equal(a[5][0], b[5][0])
    assert not torch.equal(a[5][0], EmbeddedShapes("train", 24, 48, seed=3)[5][0])
    assert sorted(a[i][1] for i in range(24)) == sorted(list(range(len(CLASSES))) * 2)
    assert a[0][0].shape == (3, 48, 48) and EmbeddedShapes("val", 2, 80)[0][0].shape == (3, 80, 80)
    tr = EmbeddedShapes("train", 24, 48)
    first = tr[3][0]
    tr.set_epoch(1)  # the training split draws new images every epoch, with the same labels
    assert not torch.equal(first, tr[3][0]) and tr[3][1] == 3
    tr.set_epoch(0)
    assert torch.equal(first, tr[3][0])


def test_resume_continues_exactly(tmp_path):
    full = tmp_path / "full"
    train(TrainConfig(out=str(full), **TINY))
    part = tmp_path / "part"
    train(TrainConfig(out=str(part), stop_after_epochs=1, **TINY))
    assert len(_epochs(part)) == 1
    train(TrainConfig(out=str(part), resume=True, **TINY))
    a, b = _epochs(full), _epochs(part)
    assert [r["train_loss"] for r in a] == [r["train_loss"] for r in b]
    assert [r["val_loss"] for r in a] == [r["val_loss"] for r in b]
    for f in ("last.pt", "best.pt", "best.safetensors", "curves.png"):
        assert (part / f).is_file()
    m = ev.create_model("mobilenetv3_small_075", num_classes=len(CLASSES))
    ev.load_weights(m, part / "best.safetensors")
    from edgevision.weights.io import read_state_dict
    _, meta = read_state_dict(part / "best.safetensors")
    assert meta["format"] == "edgevision" and meta["model"] == "mobilenetv3_small_075"
    assert meta["num_classes"] == str(len(CLASSES)) and json.loads(meta["classes"]) == list(CLASSES)
    assert json.loads(meta["input_config"])["input_size"] == [3, 32, 32]  # the trained resolution


def test_progressive_learning_changes_size_and_regularisation(tmp_path):
    prog = ProgressiveConfig(stages=2, size=(32, 48), dropout=(0.0, 0.3), randaug=(0, 5))
    lines = []
    train(TrainConfig(out=str(tmp_path), progressive=prog, **TINY), log=lines.append)
    rows = _epochs(tmp_path)
    assert [r["size"] for r in rows] == [32, 48] and [r["stage"] for r in rows] == [0, 1]
    assert any("stage 1: epochs 2-2  size 48  dropout 0.3  randaug 5" in l for l in lines)


def test_checkpoint_of_another_model_is_refused(tmp_path):
    train(TrainConfig(out=str(tmp_path), stop_after_epochs=1, **TINY))
    cfg = dict(TINY, model="mobilenetv2_035")
    with pytest.raises(WeightsError, match="from model 'mobilenetv3_small_075'"):
        train(TrainConfig(out=str(tmp_path), resume=True, **cfg))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    train(TrainConfig(out=str(tmp_path), stop_after_epochs=1, **TINY))
    good = (tmp_path / "last.pt").read_bytes()
    import edgevision.train.loop as loop
    real = loop.distillation_loss
    calls = []

    def diverging(*a, **k):  # the loss explodes on the third step after resuming
        calls.append(1)
        loss = real(*a, **k)
        return loss * float("nan") if len(calls) >= 3 else loss
    monkeypatch.setattr(loop, "distillation_loss", diverging)
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        train(TrainConfig(out=str(tmp_path), resume=True, **TINY))
    assert (tmp_path / "last.pt").read_bytes() == good


def _folder(root, n_per_class=4, corrupt=0):
    for split in ("train", "val"):
        for c in ("a", "b"):
            d = root / split / c
            d.mkdir(parents=True)
            for i in range(n_per_class):
                color = (255, 0, 0) if c == "a" else (0, 0, 255)
                Image.new("RGB", (40, 40), color).save(d / f"{i}.png")
    for i in range(corrupt):
        (root / "train" / "a" / f"bad{i}.jpg").write_bytes(b"not an image")


def test_folder_data_with_corrupt_images(tmp_path):
    _folder(tmp_path / "data", n_per_class=12, corrupt=2)
    cfg = dict(TINY, epochs=1)
    lines = []
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        res = train(TrainConfig(out=str(tmp_path / "run"), data=str(tmp_path / "data"), **cfg),
                    log=lines.append)
    assert any("skipped 2 unreadable image(s)" in l for l in lines)
    assert res["best_top1"] >= 0


def test_empty_or_missing_data_folder(tmp_path):
    (tmp_path / "empty" / "train").mkdir(parents=True)
    (tmp_path / "empty" / "val").mkdir()
    with pytest.raises(EdgeVisionError, match="no class sub-folders"):
        train(TrainConfig(out=str(tmp_path / "r"), data=str(tmp_path / "empty"), **TINY))
    with pytest.raises(EdgeVisionError, match="train/ and val/"):
        train(TrainConfig(out=str(tmp_path / "r"), data=str(tmp_path / "nope"), **TINY))


def test_cli_train_and_eval(tmp_path):
    out = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "edgevision", "train", "--model", "mobilenetv3_small_075",
                        "--out", str(out), "--epochs", "1", "--batch-size", "16", "--train-size", "32",
                        "--val-size", "24", "--resolution", "32", "--workers", "0"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    # output that is not a terminal gets one line per epoch, no progress-bar fragments
    assert "\r" not in r.stdout + r.stderr and "epoch 1/1: train loss" in r.stdout
    r = subprocess.run([sys.executable, "-m", "edgevision", "eval", "--model", "mobilenetv3_small_075",
                        "--weights", str(out / "best.safetensors"), "--resolution", "32", "--val-size", "24",
                        "--confusion", str(tmp_path / "cm.png")], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "top-1" in r.stdout and (tmp_path / "cm.png").stat().st_size > 1000


def test_torchrun_two_processes(tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                        "--master_port=29533", "-m", "edgevision", "train", "--model", "mobilenetv3_small_075",
                        "--out", str(out), "--epochs", "1", "--batch-size", "8", "--train-size", "32",
                        "--val-size", "16", "--resolution", "32", "--workers", "0"],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "weights identical on all ranks: True" in r.stdout + r.stderr
    m = ev.create_model("mobilenetv3_small_075", num_classes=len(CLASSES))
    ev.load_weights(m, out / "best.safetensors")
    assert len(_epochs(out)) == 1  # only rank 0 wrote
