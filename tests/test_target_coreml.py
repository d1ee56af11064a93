"""Core ML target: every family converts to an fp16 ML Program whose I/O, ops and fp16 precision
(through a PyTorch proxy) are checked - Core ML itself cannot run here; INT8 weights hold exactly
the values the INT8 proxy uses; bad input fails with one clear error and writes nothing."""
import re
import sys

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("coremltools")

import edgevision as ev  # noqa: E402
import edgevision.registry  # noqa: E402
from edgevision.deploy.calibration import calibration_images  # noqa: E402
from edgevision.deploy.export import ExportError, ExportReport, export, read_metadata  # noqa: E402
from edgevision.deploy.quantize import QuantRecipe, QuantizeError, quantize  # noqa: E402
from edgevision.deploy.reparam import reparameterize  # noqa: E402
from edgevision.deploy.session import RuntimeMissing  # noqa: E402
from edgevision import files  # noqa: E402
from edgevision.deploy.targets import TARGETS, coreml  # noqa: E402
from edgevision.files import install_tree  # noqa: E402
from edgevision.errors import ConfigError, EdgeVisionError  # noqa: E402

from conftest import ALL_MODELS, nontrivial_bn, realistic_bn, small_size, smallest_per_family  # noqa: E402

PROXY_KEYS = {"random (fp16 PyTorch proxy)", "image (fp16 PyTorch proxy)"}


@pytest.fixture(autouse=True)
def registered(monkeypatch):
    """export(fmt="coreml") and QuantRecipe(runtime="coreml") find the target in TARGETS (added
    here for the test when the table does not list it yet)."""
    if TARGETS.get("coreml") is not coreml:
        monkeypatch.setitem(TARGETS, "coreml", coreml)


# the default suite converts four families (ReLU6 convs; TF "same" padding, which the TorchScript
# route cannot convert under numpy 2.4; LayerNorm + Linear as 1x1 conv; linear attention); the
# other families are slow
DEFAULT_FAMILIES = {"mobilenetv2", "efficientnet_lite", "convnext", "efficientvit_mit"}
FAMILY_PARAMS = [n if fam in DEFAULT_FAMILIES else pytest.param(n, marks=pytest.mark.slow)
                 for fam, n in sorted(smallest_per_family(prefer={"tf_efficientnet_lite0"}).items(),
                                      key=lambda kv: kv[1])]


def _package_bytes(path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# random BN statistics make these deep SiLU nets' activations explode (logits ~1e8): export's own
# reparameterization check fails for any format; measured statistics keep them well-scaled
EXPLODING = {"tf_efficientnetv2_s", "tf_efficientnetv2_m", "tf_efficientnetv2_l"}


def _export(name, out, **kwargs):
    torch.manual_seed(0)
    s = small_size(name)
    model = ev.create_model(name)
    model = (realistic_bn(model, (s, s)) if name in EXPLODING else nontrivial_bn(model, name, (s, s))).eval()
    return model, s, export(model, out, fmt="coreml", resolution=(s, s), **kwargs)


@pytest.mark.parametrize("name", FAMILY_PARAMS)
def test_family_converts_and_is_checked(name, tmp_path):
    out = tmp_path / "m.mlpackage"
    model, s, r = _export(name, out)
    assert r.runtime == r.format == "coreml" and r.precision == "fp16 (not executed on this OS)"
    assert set(r.max_abs_diff) == PROXY_KEYS  # within the fp16 tolerance, or export would have raised
    assert (out / "Manifest.json").is_file() and r.size_bytes == _package_bytes(out)
    meta = read_metadata(out)
    assert meta["model"] == name and meta["resolution"] == (s, s) and not meta["dynamic_batch"]
    spec = coreml._spec(out)
    assert coreml._io(spec) == {"input": ("input", (1, 3, s, s), "FLOAT32"),
                                "output": ("logits", (1, model.num_classes), "FLOAT32")}
    notes = "\n".join(r.notes)
    assert "Core ML: not executed on this OS (macOS/iOS only); checked: conversion, I/O names/shapes/" \
           "dtypes, op histogram (top ops), fp16 PyTorch proxy" in notes
    assert re.search(r"fp16 PyTorch proxy: same top-1 as fp32 on [0-2] of 2 inputs", notes)
    ops = re.search(r"Core ML program: (\d+) ops \((\w+) (\d+)", notes)
    hist = coreml.op_histogram(spec)
    assert ops and int(ops.group(1)) == sum(n for t, n in hist.items() if t != "const")  # fp16: no constexpr
    assert hist[ops.group(2)] == int(ops.group(3)) and hist["conv"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_converts(name, tmp_path):
    _, _, r = _export(name, tmp_path / "m.mlpackage")
    assert r.precision.startswith("fp16") and set(r.max_abs_diff) == PROXY_KEYS


class Tiny(nn.Module):
    """conv -> ReLU -> 1x1 conv (3072 weights: quantized) x per-channel scale -> pool -> Linear."""
    model_name = "tiny"

    def __init__(self, gain: float = 1.0, op=None):
        super().__init__()
        self.input_config = ev.registry.get_entry("mobilenetv3_small_075").input_config
        self.num_classes = 16
        self.stem = nn.Conv2d(3, 32, 3, stride=2, padding=1)
        self.pw = nn.Conv2d(32, 96, 1)
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, 96) * gain)
        self.fc = nn.Linear(96, 16)
        self.op = op

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = self.pw(x) * self.scale.view(1, -1, 1, 1)
        x = self.op(x) if self.op is not None else x
        return self.fc(x.mean((2, 3)))


def test_session_refuses_in_one_line(tmp_path):
    with pytest.raises(EdgeVisionError, match=r"^Core ML models run only on macOS/iOS; ") as e:
        coreml.session(tmp_path / "m.mlpackage")
    assert "\n" not in str(e.value)
    assert coreml.RUNS_HERE is False


def test_unsupported_op_names_the_model_and_the_op(tmp_path):
    model = Tiny(op=lambda t: torch.special.erfinv(torch.tanh(t) * 0.5)).eval()
    with pytest.raises(ExportError, match=r"^Core ML cannot convert tiny: op special_erfinv is not "
                                          r"supported by coremltools [\d.]+; export it for another runtime"):
        export(model, tmp_path / "m.mlpackage", fmt="coreml", resolution=(32, 32))
    assert list(tmp_path.iterdir()) == []


def test_fp16_overflow_is_refused(tmp_path):
    """Activations beyond fp16's range (65504) become inf on the device: export refuses."""
    model = Tiny(gain=1e6).eval()
    with pytest.raises(ExportError, match=r"tiny in fp16 \(what Core ML computes\) differs from fp32 "
                                          r"on the random input: max abs diff (inf|nan)"):
        export(model, tmp_path / "m.mlpackage", fmt="coreml", resolution=(32, 32))
    assert list(tmp_path.iterdir()) == []


def test_verify_refuses_other_io(tmp_path):
    """A package whose input shape is not the one export checks is refused."""
    model = Tiny().eval()
    art = coreml.build(model, torch.randn(1, 3, 32, 32), None, tmp_path)
    report = ExportReport(tmp_path / "m.mlpackage", "coreml", "coreml", "fp32", (48, 48), 18)
    inputs = {"random": torch.randn(1, 3, 48, 48)}
    with pytest.raises(ExportError, match=r"input is \('input', \(1, 3, 32, 32\), 'FLOAT32'\), "
                                          r"expected \('input', \(1, 3, 48, 48\), 'FLOAT32'\)"):
        coreml.verify(report, model, art, inputs, 1e-4)
    ok = {"random": torch.randn(1, 3, 32, 32), "image": torch.randn(1, 3, 32, 32)}
    coreml.verify(report, model, art, ok, 1e-4)
    assert set(report.max_abs_diff) == PROXY_KEYS and report.precision.startswith("fp16")


def test_bad_output_and_dynamic_batch_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"\.mlpackage path"):
        coreml.check_output(tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="batch 1.*without --dynamic-batch"):
        export(Tiny().eval(), tmp_path / "m.mlpackage", fmt="coreml", resolution=(32, 32),
               dynamic_batch=True)
    assert not (tmp_path / "m.mlpackage").exists()


def test_missing_coremltools_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "coremltools", None)  # import coremltools -> ImportError
    with pytest.raises(RuntimeMissing, match=r"coremltools is not installed; install it with "
                                             r"`\.venv/bin/pip install -e '\.\[mobile\]'` "
                                             r"\(or `pip install coremltools==9\.0`\)"):
        export(Tiny().eval(), tmp_path / "m.mlpackage", fmt="coreml", resolution=(32, 32))
    assert list(tmp_path.iterdir()) == []


def test_install_tree_replaces_whole_or_not_at_all(tmp_path, monkeypatch):
    src = tmp_path / "src.mlpackage"
    (src / "Data").mkdir(parents=True)
    (src / "Manifest.json").write_text("new")
    (src / "Data" / "w.bin").write_bytes(b"0123456789")
    out = tmp_path / "out" / "m.mlpackage"
    (out / "Data").mkdir(parents=True)
    (out / "Manifest.json").write_text("old")
    (out / "stale.txt").write_text("left from the previous tree")
    assert install_tree(src, out) == 13
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["Data", "Data/w.bin",
                                                                             "Manifest.json"]
    assert (out / "Manifest.json").read_text() == "new" and (out.stat().st_mode & 0o777) != 0o700
    (src / "Manifest.json").write_text("newer")

    def broken_copy(a, b, **kw):  # fails halfway through the copy
        (b / "Manifest.json").write_text("partial")
        raise OSError("disk full")
    monkeypatch.setattr(files.shutil, "copytree", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        install_tree(src, out)
    assert (out / "Manifest.json").read_text() == "new" and sorted(p.name for p in out.parent.iterdir()) == \
        ["m.mlpackage"]  # the previous tree, and no temporary sibling left


@pytest.fixture(scope="module")
def small():
    """mobilenetv3_small_075 with measured BN statistics: logits that depend on the image (the
    random-statistics fixture gives every image the same argmax), reparameterized as quantize does."""
    torch.manual_seed(0)
    model = realistic_bn(ev.create_model("mobilenetv3_small_075", num_classes=12), (64, 64)).eval()
    deploy = reparameterize(model, input_size=(64, 64)).to(memory_format=torch.contiguous_format)
    x = calibration_images("embedded", model.input_config, (64, 64), 48, split="test")
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert len(set(ref.argmax(1))) >= 3, "the fixture's argmax must vary with the image"
    return model, deploy, x, ref


def _constexpr_count(path) -> int:
    return sum(n for t, n in coreml.op_histogram(coreml._spec(path)).items() if t.startswith("constexpr_"))


def test_int8_weights_match_the_proxy(small, tmp_path):
    model, deploy, x, ref = small
    q = tmp_path / "q.mlpackage"
    assert coreml.int8(deploy, q, x[:2], QuantRecipe(runtime="coreml")) == ("", [])
    fp16_weights = sum(p.numel() * 2 for p in deploy.parameters())
    assert fp16_weights / _package_bytes(q) > 1.6  # int8 weights: about half of the fp16 package
    line = coreml.notes(q)[1]
    counts = re.search(r"INT8 weights \(per-channel, symmetric\): (\d+) of (\d+) conv/linear weights; "
                       r"fp16: (\d+) with <= 2048 values, 0 kept by the recipe", line)
    assert counts and int(counts.group(1)) == _constexpr_count(q) > 30
    assert int(counts.group(1)) + int(counts.group(3)) == int(counts.group(2))
    proxy, half = coreml.proxy_session(deploy, "int8"), coreml.proxy_session(deploy, "fp16")
    got = proxy(x)
    assert proxy.precision == "int8 weights, fp16 (PyTorch proxy; not executed on this OS)"
    assert not np.array_equal(got, half(x))  # the proxy really runs the quantized weights
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.9 and np.abs(got - ref).mean() < 0.05


def test_int8_recipe_options(small, tmp_path):
    _, deploy, x, _ = small
    names = [n for n, m in deploy.named_modules() if isinstance(m, nn.Conv2d) and m.weight.numel() > 2048]
    recipe = QuantRecipe(runtime="coreml", per_channel=False, keep_first_last=True, exclude_ops=("Gemm",),
                         float_nodes=(names[3],))
    q = tmp_path / "q.mlpackage"
    coreml.int8(deploy, q, x[:2], recipe)  # raises unless the per-tensor proxy matches bit for bit
    _, counts = coreml._int8_plan(deploy, recipe)
    linears = sum(isinstance(m, nn.Linear) and m.weight.numel() > 2048 for m in deploy.modules())
    assert counts["kept"] == 1 + linears  # float_nodes + the Linear layers (the stem conv is small)
    assert counts["quantized"] == _constexpr_count(q) == len(names) - 1
    assert "INT8 weights (per-tensor, symmetric)" in coreml.notes(q)[1]
    with pytest.raises(ConfigError, match="weights only: exclude_ops can name conv, linear or "
                                          "conv_transpose.*not Softmax"):
        coreml.int8(deploy, q, x[:2], QuantRecipe(runtime="coreml", exclude_ops=("Softmax",)))
    with pytest.raises(ConfigError, match=r"float_nodes \['nope'\] are not conv/linear modules"):
        coreml.proxy_session(deploy, "int8", QuantRecipe(runtime="coreml", float_nodes=("nope",)))
    with pytest.raises(ConfigError, match="quantizes weights only: drop them"):
        coreml.int8(deploy, q, x[:2], QuantRecipe(runtime="coreml", transformer=True))
    with pytest.raises(ConfigError, match="fp16 or int8"):
        coreml.proxy_session(deploy, "fp32")


def test_int8_checks_weights_and_proxy(tmp_path, monkeypatch):
    """The converter folds a per-channel scale into the conv before it unless told not to; INT8
    refuses a weight it cannot find as PyTorch has it, and values the proxy would not use."""
    model, x = Tiny().eval(), np.random.default_rng(0).standard_normal((2, 3, 32, 32), np.float32)
    coreml.int8(model, tmp_path / "a.mlpackage", x, None)
    assert _constexpr_count(tmp_path / "a.mlpackage") == 1  # pw (3072 values); stem and fc are small
    monkeypatch.setattr(coreml, "_WEIGHT_REWRITING_PASSES", ())
    with pytest.raises(QuantizeError, match=r"weight of pw in tiny is not in the converted program.*"
                                            r"float_nodes=\('pw',\)"):
        coreml.int8(model, tmp_path / "b.mlpackage", x, None)
    monkeypatch.undo()
    monkeypatch.setattr(coreml, "_fake_int8", lambda w, axis: w)  # a proxy that does not quantize
    with pytest.raises(QuantizeError, match="stored other values for pw than the PyTorch proxy"):
        coreml.int8(model, tmp_path / "c.mlpackage", x, None)
    assert not (tmp_path / "b.mlpackage").exists() and not (tmp_path / "c.mlpackage").exists()


def test_quantize_uses_the_proxy(small, tmp_path):
    model = small[0]
    out = tmp_path / "q.mlpackage"
    r = quantize(model, out, QuantRecipe(runtime="coreml", images=2, held_out=24), resolution=(64, 64))
    assert r.precision.startswith("int8 weights, fp16") and r.top1_agreement >= 90 and r.held_out == 24
    assert r.calib_images == 0 and "weights only (no activation calibration)" in r.summary()
    assert r.notes[0].startswith("Core ML program: ") and r.notes[1].startswith("INT8 weights (per-channel")
    assert (out / "Manifest.json").is_file() and read_metadata(out)["model"] == "mobilenetv3_small_075"
    assert r.size_ratio > 3  # fp32 PyTorch weights / int8 package


def test_empty_calibration_folder(small, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(QuantizeError, match="contains no images"):
        quantize(small[0], tmp_path / "q.mlpackage",
                 QuantRecipe(runtime="coreml", calib=str(tmp_path / "empty")), resolution=(64, 64))
    assert not (tmp_path / "q.mlpackage").exists()
