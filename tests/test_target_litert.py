"""LiteRT target: fp32 export matches PyTorch and is fully delegated to XNNPACK; INT8 keeps
float32 I/O, runs as one XNNPACK partition (hard-swish rewritten) and agrees with fp32; recipe
options map to what stays in float; bad input fails with one clear error."""
import json
import re
import sys

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("litert_torch")
pytest.importorskip("ai_edge_litert")

import edgevision as ev  # noqa: E402
from edgevision.deploy.export import ExportError, export, metadata_path  # noqa: E402
from edgevision.deploy.quantize import QuantRecipe, QuantizeError, quantize  # noqa: E402
from edgevision.deploy.session import RuntimeMissing  # noqa: E402
from edgevision.deploy.targets import TARGETS  # noqa: E402
from edgevision.deploy.targets import litert  # noqa: E402
from edgevision.errors import ConfigError, EdgeVisionError  # noqa: E402
from edgevision.registry import get_entry  # noqa: E402

from conftest import ALL_MODELS, nontrivial_bn, realistic_bn, small_size  # noqa: E402

RES = 64


@pytest.fixture(scope="module", autouse=True)
def registered():
    """The target in the runtime table (a no-op once targets/__init__.py lists it)."""
    mp = pytest.MonkeyPatch()
    mp.setitem(TARGETS, litert.NAME, litert)
    yield
    mp.undo()


@pytest.fixture(scope="module")
def model():
    """MobileNetV3 (hard-swish, hard-sigmoid squeeze-excite) with BN statistics measured on images,
    so its outputs depend on the input like a trained model's (random statistics collapse every
    image to one class, which would make agreement meaningless)."""
    torch.manual_seed(0)
    return realistic_bn(ev.create_model("mobilenetv3_small_075", num_classes=12), (RES, RES)).eval()


@pytest.fixture(scope="module")
def fp32(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("litert") / "m.tflite"
    return export(model, out, fmt="litert", resolution=(RES, RES))


@pytest.fixture(scope="module")
def int8(model, tmp_path_factory):
    out = tmp_path_factory.mktemp("litert") / "q.tflite"
    return quantize(model, out, QuantRecipe(runtime="litert", images=32, held_out=100),
                    resolution=(RES, RES))


def _interpreter(path):
    from ai_edge_litert.interpreter import Interpreter
    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    return it


def test_export_matches_pytorch_and_is_fully_delegated(fp32):
    assert fp32.runtime == "litert" and fp32.format == "litert" and fp32.precision == "fp32"
    assert fp32.path.is_file() and fp32.max_abs_diff.keys() == {"random", "image"}
    meta = json.loads(metadata_path(fp32.path).read_text())
    assert meta["edgevision_model"] == "mobilenetv3_small_075" and json.loads(meta["resolution"]) == [RES, RES]
    m = re.fullmatch(r"XNNPACK: (\d+) of (\d+) ops delegated in 1 partition", fp32.notes[0])
    assert m and m.group(1) == m.group(2) and int(m.group(1)) > 50, fp32.notes
    inp = _interpreter(fp32.path).get_input_details()[0]  # the file keeps the NCHW float32 input
    assert inp["dtype"] == np.float32 and list(inp["shape"]) == [1, 3, RES, RES]


def test_session_runs_a_batch_one_image_at_a_time(fp32, model):
    sess = litert.session(fp32.path, threads=1)
    assert sess.precision == "fp32" and sess.runtime == "litert"
    x = torch.randn(3, 3, RES, RES)
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(sess(x.numpy()) - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    with pytest.raises(ConfigError, match=r"takes \(N, 3, 64, 64\) images; got \(1, 3, 96, 96\)"):
        sess(np.zeros((1, 3, 96, 96), np.float32))
    with pytest.raises(EdgeVisionError, match="computes in fp32, not int8"):
        litert.session(fp32.path, precision="int8")
    with pytest.raises(ConfigError, match="unknown LiteRT precision"):
        litert.session(fp32.path, precision="bf16")


def test_int8_float_io_one_partition_and_agreement(int8):
    """Hard-swish rewritten: one XNNPACK partition, no op left to the built-in kernels; float32
    input and output; high agreement with fp32 on held-out images."""
    assert int8.precision == "int8" and int8.runtime == "litert" and int8.size_ratio > 2.5
    assert metadata_path(int8.path).is_file()
    it = _interpreter(int8.path)
    assert [d["dtype"] for d in it.get_input_details() + it.get_output_details()] == [np.float32] * 2
    d = litert.delegation(int8.path)
    assert d["partitions"] == 1 and d["left"] == {} and d["delegated"] == d["ops"], d
    assert int8.held_out == 100 and int8.top1_agreement >= 90 and int8.logit_drift < 0.05, int8.summary()
    assert litert.session(int8.path, precision="int8").precision == "int8"


def test_int8_session_runs_in_xnnpack(int8):
    """The session's XNNPACK flags keep the int8 kernels (QS8): without them the CompiledModel
    leaves every int8 op to the built-in kernels, several times slower."""
    assert litert._compiled(int8.path, 1).is_fully_accelerated()


class _RuntimeWeights(nn.Module):
    """Attention's matrix product: ``v @ a^T`` with ``a`` computed from the input converts to a
    FULLY_CONNECTED whose weights are a run-time tensor."""

    def __init__(self):
        super().__init__()
        self.stem, self.qk, self.head = nn.Conv2d(3, 8, 3, 2, 1), nn.Conv2d(8, 16, 1), nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        q, k = self.qk(x).flatten(2).chunk(2, dim=1)
        a = (q.transpose(1, 2) @ k).softmax(-1)
        return self.head((x.flatten(2) @ a.transpose(1, 2)).mean(-1))


def test_session_delegates_fully_connected_with_run_time_weights(tmp_path):
    """The interpreter's default XNNPACK delegate leaves such a FULLY_CONNECTED to the built-in
    kernels (two partitions); the session's CompiledModel, with XNNPACK's dynamic fully-connected
    flag, takes the whole model, and ``delegation`` says so."""
    import litert_torch
    torch.manual_seed(0)
    model, path = _RuntimeWeights().eval(), tmp_path / "attn.tflite"
    litert_torch.convert(model, (torch.rand(1, 3, 16, 16),)).export(str(path))
    default = [o["op_name"] for o in _interpreter(path)._get_ops_details()]
    assert default.count("DELEGATE") == 2, default
    assert litert.delegation(path) == {"ops": len(default) - 2, "delegated": len(default) - 2,
                                       "partitions": 1, "left": {}}
    x = torch.rand(2, 3, 16, 16)
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(litert.session(path, threads=1)(x.numpy()) - ref).max() < 1e-5


def test_hard_activation_rewrite_equals_pytorch(model):
    swapped = litert._for_int8(model)
    kinds = {type(m) for m in swapped.modules()}
    assert nn.Hardswish not in kinds and nn.Hardsigmoid not in kinds
    assert {litert._HardSwish, litert._HardSigmoid} <= kinds
    x = torch.randn(2, 3, RES, RES)
    with torch.no_grad():
        assert torch.allclose(swapped(x), model(x), rtol=1e-5, atol=1e-5)
        for shape in ((4, 16, 5, 5), (4, 16)):  # 4-D constants for feature maps, scalars otherwise
            t = torch.linspace(-5, 5, int(np.prod(shape))).reshape(shape)
            assert torch.allclose(litert._HardSwish()(t), nn.functional.hardswish(t), atol=1e-6)
            assert torch.allclose(litert._HardSigmoid()(t), nn.functional.hardsigmoid(t), atol=1e-6)
    assert any(type(m) is nn.Hardswish for m in model.modules())  # the original is untouched


def test_float_types_follow_the_recipe(model):
    x = torch.randn(1, 3, RES, RES)
    m = litert._for_int8(model)
    types = litert._float_types(m, QuantRecipe(runtime="litert", keep_first_last=True,
                                               exclude_ops=("SqueezeExcite",),
                                               float_nodes=("stages.1.0",)), x)
    assert types[0].__name__ == "SqueezeExcite" and types[1] is litert._KeepFloat
    wrapped = sorted(n for n, mod in m.named_modules() if isinstance(mod, litert._KeepFloat))
    assert wrapped == ["classifier", "stages.1.0", "stem.conv"]
    with torch.no_grad():
        assert torch.allclose(m(x), model(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="no module of type 'Softmax'.*SqueezeExcite"):
        litert._float_types(litert._for_int8(model), QuantRecipe(runtime="litert", exclude_ops=("Softmax",)), x)
    with pytest.raises(ConfigError, match="no module named 'stages.9'"):
        litert._float_types(litert._for_int8(model), QuantRecipe(runtime="litert", float_nodes=("stages.9",)), x)


class _Tiny(nn.Module):
    """conv -> hard-swish -> conv -> pool -> linear: a second or two to convert."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.act = nn.Hardswish()
        self.conv = nn.Conv2d(8, 16, 3, 1, 1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = self.conv(self.act(self.stem(x))).relu()
        return self.fc(x.mean((2, 3)))


def test_keep_first_last_leaves_stem_and_classifier_in_float(tmp_path):
    torch.manual_seed(0)
    calib = torch.randn(4, 3, 16, 16).numpy()
    weights = {}
    for keep in (False, True):
        dst = tmp_path / f"keep{keep}.tflite"
        litert.int8(_Tiny().eval(), dst, calib, QuantRecipe(runtime="litert", keep_first_last=keep))
        it = _interpreter(dst)
        dtypes = {t["index"]: t["dtype"] for t in it.get_tensor_details()}
        weights[keep] = [(o["op_name"], dtypes[o["inputs"][1]]) for o in it._get_ops_details()
                         if o["op_name"] in ("CONV_2D", "FULLY_CONNECTED")]
    assert weights[False] == [("CONV_2D", np.int8), ("CONV_2D", np.int8), ("FULLY_CONNECTED", np.int8)]
    assert weights[True] == [("CONV_2D", np.float32), ("CONV_2D", np.int8), ("FULLY_CONNECTED", np.float32)]


@pytest.mark.filterwarnings("ignore:The tensor attribute")
def test_capture_without_dynamo_is_noted():
    """A model TorchDynamo cannot trace (Python that reads a tensor's version counter) is captured
    the non-strict way, and the delegation note says so."""
    class Cached(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.ones(3))
            self._cache = {}

        def forward(self, x):
            key = (self.p._version,)
            if key not in self._cache:
                self._cache = {key: self.p.detach() * 2}
            return x * self._cache[key].view(1, 3, 1, 1)
    x = torch.randn(1, 3, 4, 4)
    graph, note = litert._capture(Cached().eval(), x)
    assert note.startswith("INT8 captured without TorchDynamo") and torch.allclose(graph(x), 2 * x)
    graph, note = litert._capture(_Tiny().eval(), torch.randn(1, 3, 16, 16))
    assert note == ""


def test_unconvertible_op_names_model_and_op(tmp_path):
    class Erfinv(nn.Module):
        model_name = "erfinv_net"

        def forward(self, x):
            return torch.erfinv(x.tanh())
    with pytest.raises(ExportError, match=r"LiteRT conversion of erfinv_net failed: .*aten\.erfinv.*--format onnx"):
        litert.build(Erfinv().eval(), torch.randn(1, 3, 8, 8), None, tmp_path)
    assert not list(tmp_path.iterdir())


def test_missing_runtime_names_the_install(fp32, monkeypatch):
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    with pytest.raises(RuntimeMissing, match=r"ai_edge_litert is not installed.*\.\[mobile\].*ai-edge-litert==2\.3\.0"):
        litert.session(fp32.path)


def test_float_io_flag_missing_is_a_clear_error(monkeypatch):
    from litert_torch._convert import litert_converter
    monkeypatch.setattr(litert_converter, "converter_api_ext", object())
    with pytest.raises(QuantizeError, match="strict_qdq_mode.*litert-torch==0.10.0"):
        with litert._float_io():
            pass


def test_bad_input(model, tmp_path):
    with pytest.raises(ConfigError, match=r"\.tflite"):
        litert.check_output(tmp_path / "m.onnx")
    (tmp_path / "empty").mkdir()
    with pytest.raises(QuantizeError, match="contains no images"):
        quantize(model, tmp_path / "q.tflite", QuantRecipe(runtime="litert", calib=str(tmp_path / "empty")),
                 resolution=(RES, RES))
    with pytest.raises(ConfigError, match="NNCF presets"):
        litert.int8(model, tmp_path / "q.tflite", np.zeros((1, 3, RES, RES), np.float32),
                    QuantRecipe(runtime="litert", transformer=True))
    with pytest.raises(ConfigError, match="not available for litert"):
        QuantRecipe(runtime="litert", method="entropy")
    assert not (tmp_path / "q.tflite").exists()
    assert litert.notes(tmp_path / "none.tflite") == []


# ---- slow: every family (INT8 too), every model (fp32) -------------------------------------

# the smallest model of each family
FAMILY_SMALLEST = ["convnext_atto", "convnextv2_atto", "edgevision_mswa_s", "efficientnet_b0",
                   "efficientnet_es", "efficientvit_b0", "efficientvit_m0", "mobilenetv1_100", "mobilenetv2_035",
                   "mobilenetv3_small_075", "mobilenetv4_conv_small", "mobilenetv4_hybrid_medium",
                   "mobilevit_xxs", "mobilevitv2_050", "repvit_m0_9", "tf_efficientnet_lite0",
                   "tf_efficientnetv2_b0"]


def test_family_list_covers_every_family():
    assert {get_entry(n).family for n in FAMILY_SMALLEST} == {get_entry(n).family for n in ALL_MODELS}


def _declared(name: str, table: dict) -> bool:
    return name in table or get_entry(name).family in table


def _model(name: str):
    s = small_size(name)
    torch.manual_seed(0)
    return nontrivial_bn(ev.create_model(name, num_classes=12), name, (s, s)).eval(), s


def _export_or_refused(model, name: str, s: int, tmp_path):
    """The fp32 export's report, or None once a model the target declares unsupported is refused
    with the one error that names it and the alternative."""
    if _declared(name, litert.UNSUPPORTED):
        with pytest.raises(ExportError, match=f"does not support {name}: .*--format onnx"):
            export(model, tmp_path / "m.tflite", fmt="litert", resolution=(s, s))
        return None
    return export(model, tmp_path / "m.tflite", fmt="litert", resolution=(s, s))


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILY_SMALLEST)
def test_every_family_exports_and_quantizes(name, tmp_path):
    model, s = _model(name)
    r = _export_or_refused(model, name, s, tmp_path)
    if r is None:
        return
    assert r.precision == "fp32" and r.notes[0].startswith("XNNPACK: ")
    recipe = QuantRecipe(runtime="litert", images=8, held_out=16)
    if _declared(name, litert.UNSUPPORTED_INT8):
        with pytest.raises(QuantizeError, match=f"does not support {name}: .*--runtime onnxruntime"):
            quantize(model, tmp_path / "q.tflite", recipe, resolution=(s, s))
        return
    q = quantize(model, tmp_path / "q.tflite", recipe, resolution=(s, s))
    assert q.precision == "int8" and q.size_ratio > 2 and litert.delegation(q.path)["delegated"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_exports_to_litert(name, tmp_path):
    model, s = _model(name)
    r = _export_or_refused(model, name, s, tmp_path)
    assert r is None or r.path.is_file() and r.max_abs_diff.keys() == {"random", "image"}


def test_one_group_norm_is_taken_whole_by_xnnpack(tmp_path):
    """MobileViT V2's one-group GroupNorm converts to ops XNNPACK takes: one partition, no
    built-in op left, the same output."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.GroupNorm(1, 8), nn.Conv2d(8, 4, 1)).eval()
    with torch.no_grad():
        model[1].weight.uniform_(0.5, 1.5)
        model[1].bias.uniform_(-0.5, 0.5)
    x = torch.randn(1, 3, 16, 16)
    art = litert.build(model, x, None, tmp_path)
    d = litert.delegation(art)
    assert d["partitions"] == 1 and d["left"] == {} and d["delegated"] == d["ops"], d
    with torch.no_grad():
        assert np.abs(litert.session(art)(x.numpy()) - model(x).numpy()).max() < 1e-5
