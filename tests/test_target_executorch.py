"""ExecuTorch target: fp32 and INT8 .pte programs checked against PyTorch, how much of the graph
XNNPACK took, sessions that take any batch and thread count, and one clear error per bad input.

The default suite exports one real model (MobileNetV3) and small constructed models: one that
holds every op the target rewrites for XNNPACK, one with a clear argmax for INT8. Every family
and the whole registry run under ``-m slow`` (ExecuTorch lowering takes 20-90 s per model)."""
import copy
import json
import re
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("executorch")

import edgevision as ev  # noqa: E402
from edgevision.deploy.export import ExportError, export, read_metadata  # noqa: E402
from edgevision.deploy.quantize import QuantRecipe, QuantizeError, calibration_images, quantize  # noqa: E402
from edgevision.deploy.session import RuntimeMissing  # noqa: E402
from edgevision.deploy.targets import TARGETS  # noqa: E402
from edgevision.deploy.targets import executorch as et  # noqa: E402
from edgevision.errors import ConfigError, EdgeVisionError  # noqa: E402
from edgevision.layers import LayerNorm2d  # noqa: E402
from edgevision.registry import get_entry  # noqa: E402

from conftest import ALL_MODELS, nontrivial_bn, randomize_bn, realistic_bn, small_size, smallest_per_family  # noqa: E402

DELEGATION = r"XNNPACK: (\d+) of (\d+) ops delegated in (\d+) partitions?"
FAMILY_REPS = smallest_per_family()


@pytest.fixture(scope="module", autouse=True)
def registered():
    """The target in the runtime table (a no-op once targets/__init__.py lists it)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(TARGETS, "executorch", et)
        yield


def _delegation(notes) -> tuple[int, int, int]:
    m = re.match(DELEGATION, notes[0])
    assert m, notes
    return tuple(int(g) for g in m.groups())


def _within(got, ref, rtol=1e-5):
    return np.abs(got - ref).max() <= rtol * max(1.0, float(np.abs(ref).max()))


@pytest.fixture(scope="module")
def mobilenet(tmp_path_factory):
    """MobileNetV3 exported to .pte at 64 px: (model, path, report)."""
    torch.manual_seed(0)
    model = nontrivial_bn(ev.create_model("mobilenetv3_small_075", num_classes=12), "mobilenetv3_small_075",
                          (64, 64)).eval()
    out = tmp_path_factory.mktemp("et") / "m.pte"
    return model, out, export(model, out, fmt="executorch", resolution=(64, 64))


def test_fp32_export_matches_pytorch(mobilenet):
    model, out, r = mobilenet
    assert r.runtime == "executorch" and r.format == "executorch" and r.precision == "fp32"
    assert r.max_abs_diff.keys() == {"random", "image"} and max(r.max_abs_diff.values()) <= 1e-4
    assert out.is_file() and r.size_bytes == out.stat().st_size
    meta = read_metadata(out)  # model.pte.json beside it
    assert meta["model"] == "mobilenetv3_small_075" and meta["resolution"] == (64, 64)
    delegated, total, partitions = _delegation(r.notes)
    assert delegated == total > 100 and partitions == 1, r.notes  # Hardsigmoid rewritten too
    assert "rewritten" in r.notes[1] and "hardsigmoid" in r.notes[1]


def test_session_runs_any_batch(mobilenet):
    """The batch-1 program runs a batch one image at a time: the same rows as one by one."""
    model, out, _ = mobilenet
    sess = et.session(out)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        ref = model(x).numpy()
    got = sess(x.numpy())
    assert got.shape == (3, 12) and _within(got, ref, 1e-4)
    assert np.array_equal(got[1:2], sess(x[1:2].numpy()))
    with pytest.raises(ConfigError, match=r"takes \(3, 64, 64\) images"):
        sess(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ConfigError, match="precision"):
        et.session(out, precision="bf16")


def test_sessions_share_one_thread_count(mobilenet):
    """The thread pool is process-wide and resizing it breaks the programs loaded before: sessions
    open together run one thread count, and another count needs the others closed first."""
    import gc

    from executorch.extension.pybindings import portable_lib
    model, out, _ = mobilenet
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = model(x).numpy()
    one = et.session(out, threads=1)
    same = et.session(out)  # 0: shares the pool of the open session
    with pytest.raises(ConfigError, match="runs 1 threads for the 2 program"):
        et.session(out, threads=2)
    for sess in (one, same, one):
        assert _within(sess(x.numpy()), ref, 1e-4) and portable_lib._threadpool_get_thread_count() == 1
    del one, same, sess
    gc.collect()
    two = et.session(out, threads=2)
    assert _within(two(x.numpy()), ref, 1e-4) and portable_lib._threadpool_get_thread_count() == 2


class RewriteZoo(nn.Module):
    """Every op the target rewrites for XNNPACK, in the forms edgevision's models use them."""

    def __init__(self, c: int = 16, classes: int = 5):
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, 2, 1)
        self.ln2d = LayerNorm2d(c)  # channel LayerNorm: permute, layer_norm, permute
        self.gn = nn.GroupNorm(1, c)
        self.se = nn.Conv2d(c, c, 1)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.tok_ln = nn.LayerNorm(c)
        self.lin = nn.Conv2d(c, 1 + 2 * c, 1)
        self.head = nn.Linear(c, classes)

    def forward(self, x):
        x = self.gn(self.ln2d(self.stem(x)))
        gx = x.norm(p=2, dim=(2, 3), keepdim=True)  # ConvNeXt V2's GRN
        x = x + x * (gx / (gx.mean(dim=1, keepdim=True) + 1e-6))
        x = x * F.hardsigmoid(self.se(x.mean((2, 3), keepdim=True)))
        n, c, h, w = x.shape
        qkv = self.qkv(x).flatten(2).transpose(1, 2).reshape(n, h * w, 3, 2, c // 2)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # (n, 2 heads, hw, c/2) each
        valid = torch.zeros(h * w, dtype=torch.bool)  # a mask filled in place, like MSWA's padding mask
        valid[: h * w - 3] = True
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=valid.view(1, h * w))  # (n, 2, hw, c/2)
        t = self.tok_ln(a.transpose(1, 2).reshape(n, h * w, c))
        kk = t[..., : c // 2].unsqueeze(1).expand(-1, 4, -1, -1)  # one key head for 4 (MobileNetV4's MQA)
        lin = (kk @ kk.transpose(-1, -2)).sum(-1, keepdim=True)  # 4-D matmul, last-axis sum
        lin = lin.reshape(n, -1).mean(-1, keepdim=True)
        s, kq, vq = torch.split(self.lin(x), [1, c, c], dim=1)  # MobileViT V2 linear attention
        ctx = (kq * F.softmax(s, dim=-1)).sum(-1, keepdim=True)
        x = F.relu(vq) * ctx.expand_as(vq)
        return self.head(x.mean((2, 3)) + t.transpose(1, 2).mean(-1) * 0.5 + lin * 1e-3)


def test_rewrites_compute_the_same_and_xnnpack_takes_everything(tmp_path):
    torch.manual_seed(0)
    model = RewriteZoo().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-0.5, 0.5)
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        ref = model(x).numpy()
    art = et.build(model, x, None, tmp_path)
    assert _within(et.session(art)(x.numpy()), ref)
    notes = et.notes(art)
    delegated, total, partitions = _delegation(notes)
    assert delegated == total and partitions == 1, notes
    for op in ("layer_norm", "group_norm", "linalg_vector_norm", "mean", "hardsigmoid", "unbind",
               "scaled_dot_product_attention", "unsqueeze", "expand", "matmul", "sum", "split_with_sizes",
               "softmax"):
        assert f" {op}" in notes[1], (op, notes)
    report = json.loads((tmp_path / "model.pte.xnnpack.json").read_text())
    assert report["rewrites"]["layer_norm"] == 2 and report["fallback"] == {}


def test_softmax_after_conv_is_over_the_right_axis(tmp_path):
    """XNNPACK keeps conv outputs channels-last inside and softmaxes a 4-D tensor's last axis
    over the channels; the rewrite runs it as 2-D rows."""
    conv = nn.Conv2d(3, 8, 1).eval()
    model = nn.Sequential(conv, nn.Softmax(dim=-1)).eval()
    x = torch.randn(1, 3, 8, 16)
    art = et.build(model, x, None, tmp_path)
    with torch.no_grad():
        assert _within(et.session(art)(x.numpy()), model(x).numpy())


class ClearArgmax(nn.Module):
    """A small classifier whose logits differ clearly between images: measured BatchNorm statistics
    keep its features spread, and the classifier reads them standardized (see ``fit``)."""

    def __init__(self, classes: int = 4):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False), nn.BatchNorm2d(16),
                                nn.ReLU())
        self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 16, 1), nn.Hardsigmoid())
        self.pw = nn.Sequential(nn.Conv2d(16, 512, 1, bias=False), nn.BatchNorm2d(512), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(512, classes)
        self.input_config = get_entry("mobilenetv3_small_075").input_config
        self.model_name = "clear_argmax"

    def features(self, x):
        x = self.dw(self.stem(x))
        return self.pool(self.pw(x * self.se(x))).flatten(1)

    def forward(self, x):
        return self.classifier(self.features(x))

    @torch.no_grad()
    def fit(self, x):
        f = self.features(x)
        sd = f.std(0)
        w = torch.randn(self.classifier.out_features, f.shape[1]) / sd.clamp_min(0.3 * sd.max())
        self.classifier.weight.copy_(w)
        self.classifier.bias.copy_(-w @ f.mean(0))
        return self


@pytest.fixture(scope="module")
def clear_argmax():
    torch.manual_seed(0)
    model = realistic_bn(ClearArgmax(), (64, 64)).eval()
    cfg = model.input_config
    return model.fit(torch.from_numpy(calibration_images("embedded", cfg, (64, 64), 32)))


def test_int8_agrees_with_fp32(clear_argmax, tmp_path):
    model = clear_argmax
    held = torch.from_numpy(calibration_images("embedded", model.input_config, (64, 64), 100, split="test"))
    with torch.no_grad():
        assert model(held).argmax(1).unique().numel() == 4  # every class is somebody's top-1
    r = quantize(model, tmp_path / "q.pte", QuantRecipe(runtime="executorch", images=32, held_out=100),
                 resolution=(64, 64))
    assert r.precision == "int8" and r.runtime == "executorch" and r.held_out == 100
    assert r.top1_agreement >= 90, r.summary()
    assert (tmp_path / "q.pte").is_file() and read_metadata(tmp_path / "q.pte")["model"] == "clear_argmax"
    fp32 = et.build(copy.deepcopy(model), held[:1], None, tmp_path)
    weights = sum(m.weight.numel() * 4 for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    # int8 weights save 3 bytes of 4; scales, quantize nodes and the program itself take some back
    assert fp32.stat().st_size - (tmp_path / "q.pte").stat().st_size > weights / 2


def test_int8_recipe_options(clear_argmax, tmp_path):
    """keep_first_last keeps the stem conv and classifier in float, exclude_ops names module
    classes, float_nodes module names; per-tensor weights and histogram ranges still agree."""
    model = clear_argmax
    ep = et._export(model, torch.randn(1, 3, 64, 64), et._Captured())
    pick = lambda **kw: et._float_modules(model, ep, QuantRecipe(runtime="executorch", **kw))  # noqa: E731
    assert pick(keep_first_last=True) == ["stem.0", "classifier"]
    assert pick(exclude_ops=("Hardsigmoid",), float_nodes=("pw.0",)) == ["pw.0", "se.2"]
    with pytest.raises(ConfigError, match="no module of type 'Softmax'"):
        pick(exclude_ops=("Softmax",))
    with pytest.raises(ConfigError, match="no module named 'head'"):
        pick(float_nodes=("head",))
    recipe = QuantRecipe(runtime="executorch", images=32, held_out=50, keep_first_last=True,
                         method="histogram", per_channel=False)
    r = quantize(model, tmp_path / "q.pte", recipe, resolution=(64, 64))
    assert r.top1_agreement >= 85, r.summary()


def test_bad_quantization_input(clear_argmax, tmp_path):
    with pytest.raises(ConfigError, match="not available for executorch"):
        QuantRecipe(runtime="executorch", method="entropy")
    (tmp_path / "empty").mkdir()
    with pytest.raises(QuantizeError, match="contains no images"):
        quantize(clear_argmax, tmp_path / "q.pte",
                 QuantRecipe(runtime="executorch", calib=str(tmp_path / "empty")))
    with pytest.raises(ConfigError, match=r"must be a \.pte path"):
        quantize(clear_argmax, tmp_path / "q.onnx", QuantRecipe(runtime="executorch"))
    assert not list(tmp_path.glob("q.*"))


def test_missing_runtime(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "executorch", None)
    with pytest.raises(RuntimeMissing, match=r"pip install -e '\.\[mobile\]'"):
        et.session(tmp_path / "m.pte")


def test_unloadable_program(tmp_path):
    (tmp_path / "m.pte").write_bytes(b"not a program")
    with pytest.raises(EdgeVisionError, match="ExecuTorch cannot load"):
        et.session(tmp_path / "m.pte")


class DataDependent(nn.Module):
    """Control flow on a value: torch.export cannot capture it."""

    def forward(self, x):
        return x * 2 if x.sum() > 0 else x


def test_model_torch_export_cannot_capture(tmp_path):
    with pytest.raises(EdgeVisionError, match="torch.export cannot capture DataDependent for ExecuTorch"):
        et.build(DataDependent(), torch.randn(1, 3, 8, 8), None, tmp_path)
    assert not list(tmp_path.iterdir())


def test_failed_verification_writes_nothing(clear_argmax, tmp_path):
    with pytest.raises(ExportError, match="nothing was written"):
        export(clear_argmax, tmp_path / "m.pte", fmt="executorch", resolution=(64, 64), atol=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_declared_unsupported_int8_is_refused_up_front(tmp_path, monkeypatch):
    """A model the INT8 table lists gets one QuantizeError naming it before any work is done."""
    monkeypatch.setitem(et.UNSUPPORTED_INT8, "efficientvit_msra", "the int8 program fails at run time "
                        "(error 0x10)")
    model = ev.create_model("efficientvit_m0", num_classes=12).eval()
    monkeypatch.setattr(et, "_export", lambda *a: pytest.fail("exported a refused model"))
    with pytest.raises(QuantizeError, match=r"ExecuTorch INT8 does not support efficientvit_m0: .*"
                                            r"0x10.*--runtime onnxruntime"):
        quantize(model, tmp_path / "q.pte", QuantRecipe(runtime="executorch", images=4, held_out=4),
                 resolution=(64, 64))
    assert not list(tmp_path.glob("q.*"))


class FoldedHead(nn.Module):
    """A 1x1 conv whose weight is computed from two parameters (constant folding makes it one
    constant tensor)."""

    def __init__(self, chs: int, out: int):
        super().__init__()
        self.w = nn.Parameter(torch.randn(out, chs, 1, 1))
        self.g = nn.Parameter(torch.rand(out) + 0.5)

    def forward(self, x):
        return F.conv2d(x, self.w * self.g.view(-1, 1, 1, 1))


class NormThenFloatHead(nn.Module):
    """conv -> one-group GroupNorm (rewritten for XNNPACK into 1x1 convs with constant weights) ->
    a head kept in float whose folded weight is a constant of the first folding."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, 2, 1)
        self.norm = nn.GroupNorm(1, 8)
        self.head = FoldedHead(8, 4)
        self.input_config = get_entry("mobilenetv3_small_075").input_config
        self.model_name = "norm_then_float_head"

    def forward(self, x):
        return self.head(self.norm(self.stem(x))).mean((2, 3))


def test_int8_float_module_keeps_its_own_folded_weights(tmp_path):
    """A module kept in float keeps its folded weight after the XNNPACK rewrites add constants of
    their own (they once reused its constant's name: a wrong-shape conv weight, no program)."""
    torch.manual_seed(0)
    model = NormThenFloatHead().eval()
    r = quantize(model, tmp_path / "q.pte", QuantRecipe(runtime="executorch", float_nodes=("head",), images=4,
                                                       held_out=8), resolution=(32, 32))
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        ref = model(x).numpy()
    got = et.session(tmp_path / "q.pte")(x.numpy())
    assert r.precision == "int8" and np.abs(got - ref).max() < 0.1 * np.abs(ref).max(), (got, ref)


def test_attention_families_keep_their_attention_in_float():
    """EfficientViT-M's cascaded group attention and MobileViT V2's separable attention stay in
    float in ExecuTorch INT8 (their quantized channel slices fail at run time), and only they."""
    from edgevision.deploy.targets.executorch import _family_floats
    for name, kind in (("efficientvit_m0", "CascadedGroupAttention"), ("mobilevitv2_050", "SeparableSelfAttention")):
        model = ev.create_model(name, num_classes=12)
        names, note = _family_floats(model)
        modules = dict(model.named_modules())
        assert names and {type(modules[n]).__name__ for n in names} == {kind}, names
        assert note.startswith(f"{len(names)} {kind} modules kept in float"), note
    assert _family_floats(ev.create_model("mobilevit_xxs", num_classes=12)) == ([], "")
    assert not et.UNSUPPORTED_INT8


def test_failed_run_is_one_error(mobilenet, monkeypatch):
    """A program that fails at run time gives one EdgeVisionError with the runtime's reason."""
    _, out, _ = mobilenet
    sess = et.session(out)
    calls = []

    def failing(self, inputs):
        calls.append(1)
        raise RuntimeError("method->execute() failed with error 0x10")
    from executorch.runtime import Method
    monkeypatch.setattr(Method, "execute", failing)
    with pytest.raises(EdgeVisionError, match=r"ExecuTorch cannot run .*m\.pte: method->execute\(\) "
                                              r"failed with error 0x10; export the model to ONNX"):
        sess(np.zeros((2, 3, 64, 64), np.float32))
    assert len(calls) == 2  # the failing image, then once more with the log captured


def _registry_model(name):
    torch.manual_seed(0)
    s = small_size(name)
    return nontrivial_bn(ev.create_model(name, num_classes=12), name, (s, s)).eval(), s


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FAMILY_REPS.values()))
def test_every_family_quantizes(name, tmp_path):
    """INT8 lowers and runs for the smallest model of every family (random weights: the agreement
    figure is not meaningful here, only that it is measured), or is refused with one error."""
    model, s = _registry_model(name)
    recipe = QuantRecipe(runtime="executorch", images=4, held_out=4)
    if get_entry(name).family in et.UNSUPPORTED_INT8:
        with pytest.raises(QuantizeError, match=f"does not support {name}: .*--runtime onnxruntime"):
            quantize(model, tmp_path / "q.pte", recipe, resolution=(s, s))
        return
    r = quantize(model, tmp_path / "q.pte", recipe, resolution=(s, s))
    assert r.precision == "int8" and 0 <= r.top1_agreement <= 100
    if get_entry(name).family in et.FLOAT_INT8:  # one partition, and the report says what stayed float
        assert _delegation(r.notes)[2] == 1 and any("kept in float" in n for n in r.notes), r.notes


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_MODELS)
def test_every_model_exports_and_matches(name, tmp_path):
    model, s = _registry_model(name)
    if name in et.UNSUPPORTED or get_entry(name).family in et.UNSUPPORTED:
        with pytest.raises(ExportError, match=f"does not support {name}: .*--format onnx"):
            export(model, tmp_path / "m.pte", fmt="executorch", resolution=(s, s))
        return
    r = export(model, tmp_path / "m.pte", fmt="executorch", resolution=(s, s))
    assert r.precision == "fp32" and r.max_abs_diff.keys() == {"random", "image"}
    assert _delegation(r.notes)[0] > 0


def test_layer_scale_folds_into_the_branch():
    """MobileNetV4's UIB and attention blocks fold their layer scale into the branch's last conv
    on reparameterization: the same output and no multiply left in the exported graph."""
    from edgevision.blocks.uib import LayerScale2d, MobileAttentionBlock, UniversalInvertedResidual
    torch.manual_seed(0)
    blocks = [UniversalInvertedResidual(16, 16, 32, 3, start_kernel=3, end_kernel=3),
              UniversalInvertedResidual(16, 16, 32, 3),
              MobileAttentionBlock(16, 16, heads=2, key_dim=8, kv_stride=2)]
    x = torch.randn(1, 16, 8, 8)
    for block in blocks:
        for m in block.modules():
            if isinstance(m, LayerScale2d):
                m.gamma.data.uniform_(0.5, 1.5)
        block = randomize_bn(nn.Sequential(block)).eval()  # the walker reparameterizes children
        folded = ev.reparameterize(block, verify=False)
        with torch.no_grad():
            assert _within(folded(x).numpy(), block(x).numpy())
        graph = torch.export.export(folded, (x,)).graph
        assert not any(n.target is torch.ops.aten.mul.Tensor for n in graph.nodes), graph
        assert not any(isinstance(m, LayerScale2d) for m in folded.modules())
