"""`edgevision predict` as users expect: files, folders and globs; a weight file alone when it
records its model; exported artifacts run in their runtime with the stored preprocessing; top-k
with class names; JSON output; a clear line for what cannot run here."""
import json

import numpy as np
import pytest

import edgevision as ev
from edgevision.cli import main
from edgevision.images import synthetic_image

SMALL = "mobilenetv3_small_075"
CLASSES = [f"shape{i}" for i in range(6)]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("predict")
    model = ev.create_model(SMALL, num_classes=len(CLASSES)).eval()
    w = d / "w.safetensors"
    ev.save_weights(model, w, extra_meta={"classes": json.dumps(CLASSES)}, resolution=64)
    (d / "imgs").mkdir()
    for i in range(3):
        synthetic_image(i, 80).save(d / "imgs" / f"im{i}.png")
    (d / "imgs" / "notes.txt").write_text("not an image")
    assert main(["export", SMALL, "--weights", str(w), "-o", str(d / "m.onnx")]) == 0
    assert main(["export", SMALL, "--weights", str(w), "-o", str(d / "m.xml")]) == 0
    return d


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_folder_glob_and_weights_alone(files, capsys):
    res = _json(capsys, ["predict", str(files / "imgs"), "--weights", str(files / "w.safetensors"), "--json",
                         "-k", "2"])
    assert [r["image"].rsplit("/", 1)[1] for r in res] == ["im0.png", "im1.png", "im2.png"]
    assert all(r["model"] == SMALL and r["runtime"].startswith("pytorch") for r in res)
    assert all(len(r["top"]) == 2 and r["top"][0]["class"] in CLASSES for r in res)
    globbed = _json(capsys, ["predict", str(files / "imgs" / "im[01].png"), "--weights",
                             str(files / "w.safetensors"), "--json"])
    assert len(globbed) == 2 and len(globbed[0]["top"]) == 5


def test_onnx_artifact_matches_pytorch(files, capsys):
    """The artifact runs with the preprocessing its export stored (the weights' 64 px), giving
    the same classes and probabilities as the weights in PyTorch."""
    pt = _json(capsys, ["predict", str(files / "imgs"), "--weights", str(files / "w.safetensors"), "--json"])
    ox = _json(capsys, ["predict", str(files / "imgs"), "--weights", str(files / "m.onnx"), "--json"])
    assert ox[0]["runtime"] == "onnxruntime" and ox[0]["precision"] == "fp32" and ox[0]["model"] == SMALL
    for a, b in zip(pt, ox):
        assert [t["index"] for t in a["top"]] == [t["index"] for t in b["top"]]
        assert [t["class"] for t in a["top"]] == [t["class"] for t in b["top"]]  # names stored at export
        np.testing.assert_allclose([t["prob"] for t in a["top"]], [t["prob"] for t in b["top"]], atol=1e-4)


def test_openvino_ir_carries_model_preprocessing_and_classes(files, capsys):
    """An OpenVINO IR from export needs no sidecar: its rt_info holds the export's metadata."""
    from edgevision.deploy.export import read_metadata
    meta = read_metadata(files / "m.xml")
    assert meta["model"] == SMALL and meta["classes"] == CLASSES and meta["resolution"] == (64, 64)
    ov = _json(capsys, ["predict", str(files / "imgs" / "im1.png"), "--weights", str(files / "m.xml"), "--json"])
    assert ov[0]["runtime"] == "openvino" and ov[0]["top"][0]["class"] in CLASSES


def test_text_output_names_runtime_and_precision(files, capsys):
    assert main(["predict", str(files / "imgs" / "im0.png"), "--weights", str(files / "m.onnx"),
                 "--runtime", "openvino", "-k", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{SMALL}: openvino, fp32" and out[1].endswith("im0.png") and "%" in out[2]


@pytest.mark.parametrize("argv, needle", [
    (["--weights", "m.mlpackage"], "Core ML runs only on macOS/iOS"),
    (["--weights", "m.onnx", "-m", "efficientnet_b0"], "was exported from 'mobilenetv3_small_075'"),
    (["--weights", "w.safetensors", "--runtime", "openvino"], "--runtime applies to exported models"),
    (["--weights", "w.safetensors", "--device", "cuda:7"], "--device cuda:7"),
])
def test_what_cannot_run_is_one_line(files, capsys, argv, needle):
    argv = [str(files / a) if a.startswith(("m.", "w.")) else a for a in argv]
    assert main(["predict", str(files / "imgs" / "im0.png"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


def test_weights_without_a_model_name_ask_for_one(tmp_path, capsys):
    import torch
    torch.save(ev.create_model(SMALL, num_classes=6).state_dict(), tmp_path / "w.pth")
    synthetic_image(0, 64).save(tmp_path / "a.png")
    assert main(["predict", str(tmp_path / "a.png"), "--weights", str(tmp_path / "w.pth")]) == 2
    assert "pass --model NAME" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "a.png"), "--weights", str(tmp_path / "w.pth"), "-m", SMALL]) == 0
    assert "  class " in capsys.readouterr().out  # no names stored, 6 classes: numbered


@pytest.mark.parametrize("pattern, needle", [("nothing*.png", "no file matches"), ("emptydir", "holds no image")])
def test_inputs_that_match_nothing(files, tmp_path, capsys, pattern, needle):
    (tmp_path / "emptydir").mkdir()
    assert main(["predict", str(tmp_path / pattern), "--weights", str(files / "w.safetensors")]) == 2
    assert needle in capsys.readouterr().err
