"""Bad input on the command line: one clear line on stderr, exit code 2, no traceback and no file
written; the option vocabulary every verb shares; help, version and JSON listings."""
import json

import pytest
import torch

from edgevision.cli import build_parser, main

from conftest import train_config

SMALL = "mobilenetv3_small_075"


def _fails(capsys, argv, *needles):
    """``argv`` exits 2 with one stderr line holding every needle; returns that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_train_epochs_0_fails_before_any_folder(tmp_path, capsys):
    out = tmp_path / "run"
    _fails(capsys, ["train", "-m", SMALL, "-o", str(out), "--epochs", "0"], "--epochs", "at least 1, got 0")
    assert not out.exists()


def test_train_bad_model_leaves_no_folder(tmp_path, capsys):
    out = tmp_path / "run"
    _fails(capsys, ["train", "-m", "efficientnet_bo", "-o", str(out)], "unknown model")
    assert not out.exists()


@pytest.mark.parametrize("k", ["-3", "0"])
def test_predict_topk_below_1(tmp_path, capsys, k):
    _fails(capsys, ["predict", "x.jpg", "--weights", "w.safetensors", "--topk", k], "--topk", "at least 1")


@pytest.mark.parametrize("argv, needle", [
    (["train", "-m", SMALL, "-o", "r", "--lr", "0"], "--lr: must be greater than 0"),
    (["train", "-m", SMALL, "-o", "r", "-b", "0"], "--batch-size: must be at least 1"),
    (["train", "-m", SMALL, "-o", "r", "-j", "-1"], "--workers: must be at least 0"),
    (["train", "-m", SMALL, "-o", "r", "--min-lr", "-1"], "--min-lr: must be at least 0"),
    (["train", "-m", SMALL, "-o", "r", "--train-size", "0"], "--train-size: must be at least 1"),
    (["train", "-m", SMALL, "-o", "r", "--progressive", "--prog-stages", "0"], "--prog-stages"),
    (["train", "-m", SMALL, "-o", "r", "--resolution", "64", "96"], "square images"),
    (["eval", "-m", SMALL, "--weights", "w", "--val-size", "0"], "--val-size: must be at least 1"),
    (["bench", SMALL, "-b", "0"], "--bs: must be at least 1"),
    (["bench", SMALL, "--budget-s", "0"], "--budget-s: must be greater than 0"),
    (["export", SMALL, "-o", "m.onnx", "--opset", "0"], "--opset: must be at least 1"),
    (["export", SMALL, "-o", "m.onnx", "--resolution", "0"], "--resolution: must be at least 1"),
    (["export", SMALL, "-o", "m.onnx", "--resolution", "64", "64", "64"], "give H, or H W"),
    (["export", SMALL, "-o", "m.onnx", "--atol", "-1"], "--atol: must be greater than 0"),
    (["pick", "--budget-ms", "0"], "--budget-ms: must be greater than 0"),
    (["quantize", "m.onnx", "-o", "q.onnx", "--images", "0"], "--images must be at least 1"),
    (["predict", "x.jpg", "--weights", "w", "--threads", "-2"], "--threads: must be at least 0"),
])
def test_every_numeric_option_is_checked(tmp_path, monkeypatch, capsys, argv, needle):
    monkeypatch.chdir(tmp_path)
    _fails(capsys, argv, needle)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv", [
    ["export", SMALL, "-o", "m.onnx", "--resolution", "16"],
    ["bench", SMALL, "--resolution", "16", "24"],
    ["train", "-m", SMALL, "-o", "run", "--resolution", "16"],
])
def test_resolution_below_the_model_minimum(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    _fails(capsys, argv, "below", "minimum input size 32")
    assert not list(tmp_path.iterdir())


def test_weights_that_are_not_weight_files(tmp_path, capsys):
    _fails(capsys, ["eval", "-m", SMALL, "--weights", str(tmp_path)], "is a folder, not a weight file")
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(b"\x08\x07\x12\x07pytorch")
    line = _fails(capsys, ["eval", "-m", SMALL, "--weights", str(onnx)], "exported ONNX model, not a weight file")
    assert "execute code" not in line and "edgevision predict" in line
    (tmp_path / "notes.txt").write_text("hello")
    line = _fails(capsys, ["convert", str(tmp_path / "notes.txt"), "-m", SMALL, "-o", str(tmp_path / "o.safetensors")],
                  "is not a weight file")
    assert "(101)" not in line and not (tmp_path / "o.safetensors").exists()


def test_weights_of_another_head_name_the_cli_flag(tmp_path, capsys):
    import edgevision as ev
    ev.save_weights(ev.create_model(SMALL, num_classes=7), tmp_path / "w7.safetensors")
    torch.save(ev.create_model(SMALL, num_classes=7).state_dict(), tmp_path / "w7.pth")
    line = _fails(capsys, ["export", SMALL, "--weights", str(tmp_path / "w7.pth"), "--num-classes", "5",
                           "-o", str(tmp_path / "m.onnx")], "do not fit")
    assert "--num-classes" in line and "edgevision train --weights" in line
    assert not line.split("Python:")[0].count("strict=False")  # the CLI words come first


@pytest.mark.parametrize("payload, needle", [("[]", "found a JSON list"), ('{"a": 1}', "keys a"),
                                             ("not json", "not JSON")])
def test_report_on_a_file_that_is_not_bench_results(tmp_path, capsys, payload, needle):
    (tmp_path / "r.json").write_text(payload)
    line = _fails(capsys, ["report", str(tmp_path / "r.json"), "-o", str(tmp_path / "rep")], needle)
    assert "list indices" not in line and not (tmp_path / "rep").exists()


def test_model_typo_suggests_the_meant_model_first(capsys):
    line = _fails(capsys, ["info", "efficientnet_bo"], "Did you mean: efficientnet_b0,")
    assert line.index("efficientnet_b0") < line.index("efficientnet_b1")


@pytest.mark.parametrize("argv, needle", [
    (["infoo", SMALL], "unknown command 'infoo'. Did you mean: info?"),
    (["trian"], "Did you mean: train?"),
    (["train", "-m", SMALL, "-o", "r", "--epochz", "2"], "Did you mean: --epochs"),
    (["quantize", "m.onnx", "-o", "q.onnx", "--runtime", "openvno"], "Did you mean: openvino"),
    (["bench", SMALL, "--backends", "onnxruntim"], "Did you mean: onnxruntime"),
])
def test_misspellings_get_did_you_mean(capsys, argv, needle):
    _fails(capsys, argv, needle)


def test_model_is_required_where_a_verb_needs_one(capsys):
    _fails(capsys, ["info"], "which model?", "-m NAME")
    _fails(capsys, ["info", SMALL, "-m", "efficientnet_b0"], "give the model once")


def test_train_vocabulary(monkeypatch, tmp_path):
    out = str(tmp_path / "r")
    cfg = train_config(monkeypatch, "-m", SMALL, "-o", out, "-b", "8", "-j", "0", "--min-lr", "0.0001",
                        "--resolution", "64", "64", "--resume", "--device", "cpu", "--amp")
    assert (cfg.model, cfg.out, cfg.batch_size, cfg.workers, cfg.min_lr, cfg.resolution, cfg.resume,
            cfg.device, cfg.amp) == (SMALL, out, 8, 0, 1e-4, 64, True, "cpu", True)
    old = train_config(monkeypatch, "--model", SMALL, "--out", out, "--batch-size", "8", "--workers", "0",
                        "--resume", "ck/last.pt")
    assert (old.out, old.batch_size, old.workers, old.resume) == (out, 8, 0, "ck/last.pt")
    assert train_config(monkeypatch, "-m", SMALL, "-o", out).resume is False


def test_same_spelling_in_every_verb():
    """-m/--model, -o/--output, -b/--batch-size, -j/--workers and --resolution H [W] mean the same
    wherever a verb takes them."""
    parser = build_parser()
    verbs = parser._subparsers._group_actions[0].choices
    spelled = {}
    for name, verb in verbs.items():
        if hasattr(verb, "populate"):
            verb.populate()
        for a in verb._actions:
            for flag in a.option_strings:
                spelled.setdefault(flag, set()).add(tuple(sorted(s for s in a.option_strings if s != "--bs")))
    assert spelled["--model"] == {("--model", "-m")}
    assert spelled["--batch-size"] == {("--batch-size", "-b")}
    assert spelled["--workers"] == {("--workers", "-j")}
    assert {s for s in spelled["--output"]} <= {("--output", "-o"), ("--json", "--output", "-o"),
                                                ("--out", "--output", "-o")}
    for name in ("export", "quantize", "optimize", "bench", "profile", "train", "eval"):
        res = [a for a in verbs[name]._actions if "--resolution" in a.option_strings][0]
        assert res.nargs == "+" and res.metavar == ("H", "W"), name
    for name in ("train", "eval", "predict", "bench"):
        assert any("--device" in a.option_strings for a in verbs[name]._actions), name


def test_every_option_has_help_and_defaults_are_shown(capsys):
    parser = build_parser()
    for name, verb in parser._subparsers._group_actions[0].choices.items():
        if hasattr(verb, "populate"):
            verb.populate()
        for a in verb._actions:
            assert a.help, f"{name} {a.option_strings or a.dest} has no help line"
    assert main(["bench", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "timing seconds per measurement (default: 2.0)" in text and "(default: auto)" in text


def test_version(capsys):
    assert main(["--version"]) == 0
    from edgevision import __version__
    assert capsys.readouterr().out.startswith(f"edgevision {__version__} (torch ")


def test_models_json_has_figures_for_every_model(capsys):
    from edgevision.registry import list_models
    assert main(["models", "--json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(list_models())
    assert all(r["params"] > 0 and r["macs"] > 0 for r in rows.values())
    mswa = rows["edgevision_mswa_s"]
    assert mswa["published"] is False and mswa["top1"] is None
    assert rows["efficientnet_b0"]["published"] is True and rows["efficientnet_b0"]["params"] == 5288548


def test_models_table_marks_measured_figures_and_uses_units(capsys):
    assert main(["models", "edgevision_mswa_s"]) == 0
    out = capsys.readouterr().out
    row = [line for line in out.splitlines() if line.startswith("edgevision_mswa_s")][0]
    assert "-" not in row.split()[2:4] and row.split()[2].endswith("M*") and row.split()[3][-2] in "MG"
    assert main(["models", "efficientnet_b7"]) == 0
    row = [line for line in capsys.readouterr().out.splitlines() if line.startswith("efficientnet_b7")][0]
    assert row.split()[3].endswith("G")  # 37.75G, not 37746.0M


def test_info_json(capsys):
    assert main(["info", "-m", "efficientnet_b0", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["params"] == 5288548 and abs(d["macs"] - 385.8e6) < 1e6
    assert [f["reduction"] for f in d["feature_info"]] == [2, 4, 8, 16, 32]
    assert d["input_config"]["input_size"] == [3, 224, 224]
