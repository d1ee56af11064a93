import subprocess
import sys

import pytest

from edgevision.cli import main

from conftest import train_config


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "edgevision", *args], capture_output=True, text=True,
                          timeout=300)


def test_models_table_lists_family(capsys):
    assert main(["models", "--family", "efficientnet_lite"]) == 0
    out = capsys.readouterr().out
    for i in range(5):
        assert f"tf_efficientnet_lite{i}" in out
    assert "4.65M" in out and "385.2M" in out and "75.1" in out  # params, MACs, top-1 of lite0


def test_models_pattern(capsys):
    assert main(["models", "mobilenetv2_1*"]) == 0
    out = capsys.readouterr().out
    assert "mobilenetv2_100" in out and "mobilenetv2_140" in out and "mobilenetv2_050" not in out


def test_info_shows_spec_and_feature_info(capsys):
    assert main(["info", "efficientnet_b0"]) == 0
    out = capsys.readouterr().out
    assert "5,288,548" in out and "385.8M" in out
    assert "feature_info" in out and "stages.6" in out and "/32" in out
    assert "Row(kind='ir'" in out


@pytest.mark.parametrize("args, needle", [
    (["info", "efficientnet_b9"], "Did you mean"),
    (["models", "--family", "nope"], "unknown family"),
    (["models", "zzzz"], "no model matches"),
])
def test_bad_input_is_one_line_and_nonzero(args, needle):
    r = run_cli(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in r.stderr


def test_demo_toy_via_cli(tmp_path):
    r = run_cli("demo", "--toy", "--out", str(tmp_path / "demo"), "--workers", "0")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "report:" in r.stdout and (tmp_path / "demo" / "report.md").is_file()
    assert "[report] done" in r.stdout


@pytest.mark.parametrize("flag, expected", [([], True), (["--no-zero-init"], False)])
def test_train_zero_init_flag_reaches_the_config(monkeypatch, tmp_path, flag, expected):
    import edgevision.train as T
    seen = []
    monkeypatch.setattr(T, "train", lambda cfg: seen.append(cfg) or {})
    assert main(["train", "--model", "mobilenetv3_small_075", "--out", str(tmp_path), *flag]) == 0
    assert seen[0].zero_init is expected


def test_train_flags_build_the_config(monkeypatch, tmp_path):
    from edgevision.train import ProgressiveConfig, TrainConfig
    out = str(tmp_path)
    assert train_config(monkeypatch, "--model", "m", "--out", out) == TrainConfig(model="m", out=out)
    cfg = train_config(monkeypatch, "--model", "m", "--out", out, "--opt", "sgd", "--drop-path", "0.1",
                        "--drop", "0.2", "--ema", "0.99", "--no-channels-last", "--resolution", "64",
                        "--stop-after-epochs", "1", "--progressive", "--prog-size", "32", "48",
                        "--prog-mixup", "0", "0.2")
    assert cfg == TrainConfig(model="m", out=out, optimizer="sgd", drop_path_rate=0.1, drop_rate=0.2,
                              ema_decay=0.99, channels_last=False, resolution=64, stop_after_epochs=1,
                              progressive=ProgressiveConfig(size=(32, 48), mixup=(0.0, 0.2)))


def test_dense_task_takes_the_shared_train_flags(monkeypatch, tmp_path):
    import edgevision.dense.train as DT
    from edgevision.dense.train import DenseConfig
    seen = []
    monkeypatch.setattr(DT, "train_dense", lambda cfg: seen.append(cfg) or {"best": 0.0})
    out = str(tmp_path)
    assert main(["train", "--task", "detection", "--model", "m", "--out", out, "--weights", "w.pt"]) == 0
    # the train verb's defaults (epochs, batch size, ...) apply, as they always did; the resolution,
    # not given, keeps DenseConfig's; weight decay and optimizer are not on the command line
    assert seen[0] == DenseConfig(task="detection", model="m", out=out, detector="retinanet", epochs=10,
                                  batch_size=64, lr=2e-3, train_size=6000, val_size=1200, workers=2,
                                  seed=0, backbone_weights="w.pt")
    assert main(["train", "--task", "segmentation", "--model", "m", "--out", out, "--resolution", "96",
                 "--weight-decay", "0.5", "--opt", "sgd"]) == 0
    assert seen[1].resolution == 96 and seen[1].weight_decay == 1e-4 and seen[1].optimizer == "adamw"


def test_train_help_lists_defaults():
    r = run_cli("train", "--help")
    text = " ".join(r.stdout.split())
    assert r.returncode == 0 and "--epochs EPOCHS training epochs (default: 10)" in text
    assert "--prog-size START END" in text and "--stop-after-epochs" not in text
