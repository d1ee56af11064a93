"""INT8 quantization: both runtimes produce a smaller model, report agreement and speed, and
bad input fails cleanly without leaving files; a QuantRecipe refuses what quantize cannot do."""
import dataclasses
import json
import math

import numpy as np
import pytest
import torch

import edgevision as ev
from edgevision.bench.speed import add_speed, compare_speed
from edgevision.cli import main
from edgevision.deploy.export import export
from edgevision.deploy.quantize import QuantRecipe, QuantReport, QuantizeError, fill_agreement, quantize
from edgevision.errors import ConfigError

from conftest import randomize_bn


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("q")
    torch.manual_seed(0)
    model = randomize_bn(ev.create_model("mobilenetv3_small_075", num_classes=12)).eval()
    with torch.no_grad():  # trained-like biases: OpenVINO drops all-zero bias adds, which changes
        for m in model.modules():  # what NNCF's patterns match (the squeeze-excite FCs)
            if isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.uniform_(-0.1, 0.1)
    export(model, d / "fp32.onnx", resolution=(64, 64), dynamic_batch=True)
    return d / "fp32.onnx"


@pytest.mark.parametrize("runtime, suffix", [("onnxruntime", ".onnx"), ("openvino", ".xml")])
def test_int8_report(onnx_model, tmp_path, runtime, suffix):
    if runtime == "openvino":
        pytest.importorskip("nncf")
    out = tmp_path / f"int8{suffix}"
    r = quantize(onnx_model, out, QuantRecipe(images=8, held_out=16, runtime=runtime))
    assert not r.speedup and "speed" not in r.summary()  # timing is the caller's (bench.speed)
    add_speed(r, onnx_model, batches=(1, 4))
    assert out.exists() and r.precision.startswith("int8")
    # int8 weights are ~4x smaller; NNCF keeps the squeeze-excite FCs (a third of this model's
    # weights) in float unless told otherwise
    assert r.size_ratio > (2.5 if runtime == "onnxruntime" else 1.6)
    assert set(r.speedup) == {1, 4} and all(v > 0 for v in r.speedup.values())
    assert 0 <= r.top1_agreement <= 100 and r.held_out == 16 and r.logit_drift >= 0


def _activation_ranges(xml):
    """FakeQuantize name -> (input_low, input_high) for the quantizers on activations (a weight's
    quantizer reads a constant)."""
    import openvino as ov
    out = {}
    for op in ov.Core().read_model(str(xml)).get_ops():
        if op.get_type_name() == "FakeQuantize" and \
                op.input_value(0).get_node().get_type_name() != "Constant":
            lo, hi = (op.input_value(i).get_node().get_data() for i in (1, 2))
            out[op.get_friendly_name()] = (float(lo.min()), float(hi.max()))
    return out


def test_openvino_activation_ranges_follow_the_method(onnx_model, tmp_path):
    """minmax (the default) takes the global extremes over the calibration images; NNCF's built-in
    default averages the per-image extremes, a range inside it that clips the rest."""
    pytest.importorskip("nncf")
    for m in ("minmax", "nncf"):
        quantize(onnx_model, tmp_path / f"{m}.xml", QuantRecipe(images=8, held_out=2, runtime="openvino",
                                                                method=m))
    glob, mean = _activation_ranges(tmp_path / "minmax.xml"), _activation_ranges(tmp_path / "nncf.xml")
    assert glob.keys() == mean.keys() and len(glob) > 10
    for k in glob:
        assert glob[k][0] <= mean[k][0] + 1e-6 and glob[k][1] >= mean[k][1] - 1e-6, k
    assert sum(glob[k][1] > 1.05 * mean[k][1] for k in glob) > len(glob) // 4


def test_openvino_hardsigmoid_becomes_fusable(onnx_model, tmp_path):
    """PyTorch's Hardsigmoid (the squeeze-excite gate) reaches OpenVINO as HSigmoid, which the CPU
    plugin fuses into the convolution before it; ONNX HardSigmoid would run as separate nodes."""
    pytest.importorskip("nncf")
    import openvino as ov
    quantize(onnx_model, tmp_path / "q.xml", QuantRecipe(images=4, held_out=2, runtime="openvino"))
    types = [op.get_type_name() for op in ov.Core().read_model(str(tmp_path / "q.xml")).get_ops()]
    assert "HardSigmoid" not in types and types.count("HSigmoid") >= 3
    core = ov.Core()

    def executed(model):  # nodes the CPU plugin runs after its fusions
        return len(core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).get_runtime_model().get_ops())
    from edgevision.deploy.targets.openvino import openvino_model
    assert executed(openvino_model(onnx_model)) < executed(ov.convert_model(str(onnx_model)))


def _quantized_convs(xml):
    """Names of the convolutions whose weights go through a FakeQuantize."""
    import openvino as ov
    names = set()
    for op in ov.Core().read_model(str(xml)).get_ops():
        if op.get_type_name() == "Convolution":
            w = op.input_value(1).get_node()
            while w.get_type_name() in ("Convert", "Multiply", "Subtract", "Reshape"):
                w = w.input_value(0).get_node()  # compressed weights: Constant -> Convert -> scale
            if w.get_type_name() == "FakeQuantize" or w.get_element_type().get_type_name() == "i8":
                names.add(op.get_friendly_name())
    return names


def test_quantize_se_quantizes_the_squeeze_excite_convs(onnx_model, tmp_path, capsys):
    """NNCF keeps squeeze-excite FCs in float (its SE_BLOCK ignored pattern, which needs the FCs'
    bias adds: the fixture's random biases); quantize_se quantizes them, for that call only."""
    pytest.importorskip("nncf")
    runs = [("before", False), ("se", True), ("after", False)]
    for tag, se in runs:
        quantize(onnx_model, tmp_path / f"{tag}.xml",
                 QuantRecipe(images=4, held_out=2, runtime="openvino", quantize_se=se))
    before, se, after = (_quantized_convs(tmp_path / f"{t}.xml") for t, _ in runs)
    se_convs = {n for n in se if "/se/" in n}
    assert len(se_convs) >= 6 and not any("/se/" in n for n in before)  # 2 FCs per SE block
    assert se == before | se_convs and after == before  # the pattern is back after the call
    assert (tmp_path / "se.bin").stat().st_size < 0.8 * (tmp_path / "before.bin").stat().st_size
    # the CLI flag reaches quantize(): onnxruntime has no such pattern to lift
    assert main(["quantize", str(onnx_model), "-o", str(tmp_path / "x.onnx"), "--quantize-se"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--runtime openvino" in err[0] and not (tmp_path / "x.onnx").exists()


def test_keep_first_last_and_per_tensor(onnx_model, tmp_path):
    import onnx
    r = quantize(onnx_model, tmp_path / "a.onnx",
                 QuantRecipe(images=4, held_out=8, keep_first_last=True, per_channel=False))
    g = onnx.load(str(tmp_path / "a.onnx")).graph
    first_conv = next(n for n in g.node if n.op_type == "Conv")
    # the stem conv reads the raw fp32 input, not a dequantized tensor
    assert first_conv.input[0] == "input"
    assert r.size_ratio > 1.5


def test_bad_inputs_leave_no_files(onnx_model, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(QuantizeError, match="contains no images"):
        quantize(onnx_model, tmp_path / "x.onnx", QuantRecipe(calib=str(empty), images=4))
    with pytest.raises(QuantizeError, match="does not exist"):
        quantize(tmp_path / "missing.onnx", tmp_path / "x.onnx")
    with pytest.raises(ConfigError, match="unsupported runtime"):
        quantize(onnx_model, tmp_path / "x.onnx", QuantRecipe(runtime="tensorrt"))
    with pytest.raises(ConfigError, match="not available for onnxruntime"):
        quantize(onnx_model, tmp_path / "x.onnx", QuantRecipe(method="nncf"))
    with pytest.raises(ConfigError, match="not available for openvino"):
        quantize(onnx_model, tmp_path / "x.xml", QuantRecipe(runtime="openvino", method="entropy"))
    with pytest.raises(ConfigError, match="must be an .xml path"):
        quantize(onnx_model, tmp_path / "x.onnx", QuantRecipe(runtime="openvino", images=4))
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00garbage")
    with pytest.raises(ev.EdgeVisionError):
        quantize(junk, tmp_path / "x.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "junk.onnx"]


def test_cli_quantize_missing_file_is_one_line(tmp_path, capsys):
    assert main(["quantize", str(tmp_path / "nope.onnx"), "-o", str(tmp_path / "q.onnx")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]


def test_accuracy_control_reaches_the_agreement_it_was_given(tmp_path):
    """--max-drop 0: NNCF reverts layers to float until every validation image keeps its fp32
    top-1 class (untouched random init: near-tied logits, so plain INT8 flips many of them)."""
    pytest.importorskip("nncf")
    from edgevision.deploy.export import read_metadata
    from edgevision.deploy.calibration import calibration_images
    from edgevision.deploy.targets import open_session
    torch.manual_seed(0)
    onnx_model = tmp_path / "fp32.onnx"
    export(ev.create_model("mobilenetv3_small_075", num_classes=12).eval(), onnx_model, resolution=(64, 64))
    out = tmp_path / "ac.xml"
    r = quantize(onnx_model, out, QuantRecipe(images=8, held_out=8, runtime="openvino", max_drop=0.0,
                                              val_images=24))
    assert "reverted to float" in r.accuracy_control and not r.accuracy_control.startswith("0 ")
    meta = read_metadata(onnx_model)
    val = calibration_images("embedded", meta["input_config"], meta["resolution"], 24, split="val")
    fp, q = open_session(onnx_model), open_session(out, "openvino", precision="int8")
    for i in range(len(val)):
        assert fp(val[i:i + 1]).argmax() == q(val[i:i + 1]).argmax()
    with pytest.raises(ConfigError, match="runtime openvino"):
        quantize(onnx_model, tmp_path / "x.onnx", QuantRecipe(max_drop=0.01))


def test_folder_splits_are_disjoint(tmp_path):
    from PIL import Image

    from edgevision.deploy.calibration import calibration_images
    for i in range(10):
        Image.new("RGB", (40, 40), (i * 20, 0, 0)).save(tmp_path / f"{i:02d}.png")
    cfg = ev.create_model("mobilenetv3_small_075").input_config
    parts = {s: calibration_images(str(tmp_path), cfg, (32, 32), 10, split=s) for s in ("calib", "val", "test")}
    assert [len(v) for v in parts.values()] == [6, 2, 2]
    reds = {s: {round(float(v[:, 0].mean()), 4) for v in x} for s, x in parts.items()}
    assert not (reds["calib"] & reds["val"]) and not (reds["calib"] & reds["test"]) and not (reds["val"] & reds["test"])


@pytest.mark.parametrize("kwargs, message", [
    ({"runtime": "tensorrt"}, "unsupported runtime 'tensorrt'; choose one of onnxruntime, openvino"),
    ({"method": "nncf"}, "not available for onnxruntime"),
    ({"runtime": "openvino", "method": "entropy"}, "not available for openvino"),
    ({"runtime": "openvino", "preset": "fast"}, "unknown NNCF preset"),
    ({"max_drop": 0.01}, r"\(--max-drop\) uses NNCF; add --runtime openvino"),
    ({"quantize_se": True}, "--quantize-se changes what NNCF leaves in float.*--runtime openvino"),
    ({"runtime": "openvino", "max_drop": 1.0}, r"--max-drop is a fraction of top-1 agreement in \[0, 1\)"),
    ({"runtime": "openvino", "max_drop": -0.1}, "--max-drop is a fraction"),
    ({"images": 0}, "--images must be at least 1"),
    ({"held_out": 0}, "--held-out must be at least 1"),
    ({"val_images": 0}, "--val-images must be at least 1"),
    ({"exclude_ops": "Softmax"}, "exclude_ops is a list of names"),
    ({"float_nodes": [1, 2]}, "float_nodes is a list of names"),
])
def test_recipe_refuses_what_quantize_cannot_do(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        QuantRecipe(**kwargs)
    with pytest.raises(ConfigError, match=message):  # replace() validates again
        dataclasses.replace(QuantRecipe(), **kwargs)


def test_recipe_is_a_frozen_hashable_value():
    r = QuantRecipe(runtime="openvino", exclude_ops=["Softmax"], float_nodes=["a", "b"], max_drop=0.01)
    assert r.exclude_ops == ("Softmax",) and r.float_nodes == ("a", "b")  # lists stored as tuples
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.images = 8
    same = QuantRecipe(runtime="openvino", exclude_ops=("Softmax",), float_nodes=("a", "b"), max_drop=0.01)
    assert r == same and hash(r) == hash(same) and len({r, same, QuantRecipe()}) == 2
    assert dataclasses.replace(r, max_drop=None).max_drop is None and r.max_drop == 0.01


def test_recipe_options_keep_the_cli_names():
    """The fields carry today's `edgevision quantize` flags; --per-tensor turns per_channel off."""
    import argparse

    from edgevision.options import add_options, from_args
    ap = argparse.ArgumentParser()
    add_options(ap, QuantRecipe)
    flags = {s for a in ap._actions for s in a.option_strings}
    assert flags >= {"--calib", "--images", "--held-out", "--runtime", "--per-tensor", "--keep-first-last",
                     "--exclude-ops", "--method", "--transformer", "--preset", "--max-drop", "--val-images",
                     "--float-nodes", "--quantize-se"}
    r = from_args(QuantRecipe, ap.parse_args(["--per-tensor", "--exclude-ops", "Softmax", "--runtime",
                                              "openvino", "--max-drop", "0.01", "--quantize-se"]))
    assert r == QuantRecipe(per_channel=False, exclude_ops=("Softmax",), runtime="openvino", max_drop=0.01,
                            quantize_se=True)
    assert from_args(QuantRecipe, ap.parse_args([])) == QuantRecipe()


def test_quant_report_json_round_trip(tmp_path):
    r = QuantReport(tmp_path / "q.xml", "openvino", "int8 (other ops fp32)", 8, 3.5,
                    speedup={1: 1.5, 16: 2.25}, latency_ms={1: (3.0, 2.0), 16: (36.0, 16.0)},
                    top1_agreement=99.5, logit_drift=0.01, held_out=200, confident_agreement=100.0,
                    confident=150, top5_contains=100.0, notes=["XNNPACK: 10 of 10 ops delegated"],
                    accuracy_control="2 of 50 quantized ops reverted to float", float_nodes=["a", "b"])
    back = QuantReport.from_json(json.loads(json.dumps(r.to_json())))
    assert back == r and back.summary() == r.summary() and "bs16 2.25x" in r.summary()
    bare = QuantReport(tmp_path / "q.onnx", "onnxruntime", "int8", 4, 3.9)  # no speed, NaN figures
    text = json.dumps(bare.to_json(), allow_nan=False)
    again = QuantReport.from_json(json.loads(text))
    assert math.isnan(again.top1_agreement) and again.speedup == {} and again.path == bare.path
    assert "speed" not in bare.summary()


def test_agreement_figures_overall_confident_and_top5(tmp_path):
    """Four images: two where fp32 is confident (one kept, one flipped to INT8's second choice),
    two ambiguous (one kept, one flipped to a class outside INT8's top 5)."""
    ref = np.full((4, 8), 0.0, np.float32)
    ref[0, 1] = ref[1, 2] = 5.0  # confident: p(top-1) ~ 0.95
    ref[2, 3] = ref[3, 4] = 0.1  # ambiguous: p ~ 0.14
    got = ref.copy()
    got[1, 5] = 6.0  # flipped, fp32's class still second
    got[3] = np.arange(8, dtype=np.float32)[::-1] * 0.01  # INT8's top 5 is 0..4 ...
    got[3, 4] = -1.0  # ... without fp32's class 4
    r = QuantReport(tmp_path / "q.onnx", "onnxruntime", "int8", 4, 3.9)
    fill_agreement(r, ref, got)
    assert (r.top1_agreement, r.confident, r.confident_agreement, r.top5_contains, r.held_out) == \
        (50.0, 2, 50.0, 75.0, 4)
    assert "(50.00% on the 2 where fp32 is confident), fp32 top-1 in INT8 top-5 75.00%" in r.summary()


def test_compare_speed_times_a_fixed_batch_export_at_batch_1_only(tmp_path):
    torch.manual_seed(0)
    model = ev.create_model("mobilenetv3_small_075", num_classes=12).eval()
    fixed = export(model, tmp_path / "f.onnx", resolution=(32, 32)).path
    speedup, latency = compare_speed(fixed, fixed, "onnxruntime", "fp32", batches=(1, 4), budget_s=0.2)
    assert set(speedup) == set(latency) == {1} and speedup[1] > 0
    assert all(a > 0 and b > 0 for a, b in latency.values())
