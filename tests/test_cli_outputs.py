"""The output path decides the artifact format, disagreements and unwritable destinations fail
before any work, with one line and exit code 2; the bench backends for phone runtimes refuse what
they cannot measure."""
import pytest

from edgevision.cli import main

MODEL = ["mobilenetv3_small_075", "--resolution", "32", "32"]


def test_suffix_chooses_the_format(tmp_path, capsys):
    assert main(["export", *MODEL, "-o", str(tmp_path / "m.xml")]) == 0
    assert (tmp_path / "m.xml").read_text().startswith("<?xml")  # an OpenVINO IR, not ONNX bytes
    assert (tmp_path / "m.bin").is_file()
    assert "(openvino," in capsys.readouterr().out


@pytest.mark.parametrize("out, fmt, needle", [
    ("m2.onnx", "openvino", "does not match --format openvino (a .xml file): name it"),
    ("q.txt", None, "cannot tell the format from"),
])
def test_format_and_suffix_must_agree(tmp_path, capsys, out, fmt, needle):
    args = ["export", *MODEL, "-o", str(tmp_path / out)] + (["--format", fmt] if fmt else [])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())  # nothing written


def test_unwritable_destination_fails_first(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["export", *MODEL, "-o", str(blocker / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "-o/--output" in err


def test_quantize_names_the_input_each_runtime_takes(tmp_path, capsys):
    assert main(["quantize", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "q.onnx")]) == 2
    assert "does not exist; export one first" in capsys.readouterr().err


@pytest.mark.parametrize("args, needle", [
    (["bench", "mobilenetv3_small_075", "--backends", "coreml"], "run only on macOS/iOS"),
    (["bench", "mobilenetv3_small_075", "--backends", "nope"], "unknown backend"),
])
def test_bench_refuses_backends_it_cannot_measure(capsys, args, needle):
    assert main(args) == 2
    assert needle in capsys.readouterr().err
