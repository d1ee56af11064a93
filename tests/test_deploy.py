"""Reparameterization and export, registry-wide, with non-trivial BN statistics and affine params."""
import numpy as np
import pytest
import torch

import edgevision as ev
import edgevision.registry
from edgevision.deploy import reparameterize
from edgevision.deploy.export import ExportError, ExportReport, export
from edgevision.errors import ConfigError

from conftest import ALL_MODELS, registry_param, nontrivial_bn, randomize_bn, small_size, smallest_per_family


@pytest.mark.parametrize("name", [registry_param(n) for n in ALL_MODELS])
def test_reparameterize_keeps_outputs(name):
    torch.manual_seed(0)
    s = small_size(name)
    model = nontrivial_bn(ev.create_model(name), name, (s, s)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = reparameterize(model, input_size=(s, s + 32))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules()), "BN left unfused"
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before), \
        "the original model was modified"
    foldable = any(".bn." in k or k.endswith(".gamma") for k in before)
    assert not foldable or len(fused.state_dict()) < len(before), "nothing was simplified"
    x = torch.randn(2, 3, s + 32, s)
    with torch.no_grad():
        a, b = model(x), fused(x)
    assert (a - b).abs().max() <= 1e-4 * a.abs().max()
    again = reparameterize(fused, input_size=(s, s))  # idempotent
    with torch.no_grad():
        assert torch.allclose(again(x), b, atol=1e-6)


def test_reparameterize_refuses_training_mode():
    with pytest.raises(ConfigError, match="eval"):
        reparameterize(ev.create_model("mobilenetv3_small_075").train())


@pytest.mark.parametrize("name", [registry_param(n) for n in ALL_MODELS])
def test_every_model_exports_to_onnx_and_matches(name, tmp_path):
    torch.manual_seed(0)
    s = small_size(name)
    model = nontrivial_bn(ev.create_model(name), name, (s, s)).eval()
    report = export(model, tmp_path / "m.onnx", resolution=(s, s))
    assert report.path.exists() and report.precision == "fp32"
    assert report.max_abs_diff.keys() == {"random", "image"}


def test_dynamic_batch_and_openvino(tmp_path):
    pytest.importorskip("openvino")
    model = randomize_bn(ev.create_model("tf_efficientnet_lite0")).eval()
    r = export(model, tmp_path / "m.onnx", resolution=(96, 128), dynamic_batch=True)
    from edgevision.deploy.targets import open_session
    sess = open_session(r.path)
    x = torch.randn(3, 3, 96, 128)
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(sess(x.numpy()) - ref).max() <= 1e-4
    # OpenVINO builds a static-shape graph per batch size it is called with
    vs = open_session(r.path, "openvino")
    assert np.abs(vs(x.numpy()) - ref).max() <= 1e-4
    assert np.abs(vs(x[1:2].numpy()) - ref[1:2]).max() <= 1e-4
    assert vs.batches == [1, 3]
    ov = export(model, tmp_path / "m.xml", fmt="openvino", resolution=(96, 96))
    assert ov.precision == "fp32" and (tmp_path / "m.bin").exists()
    # a fixed-batch export says so instead of failing inside the runtime
    fixed = open_session(tmp_path / "m.xml", "openvino")
    assert fixed.batches == [] and fixed(np.zeros((1, 3, 96, 96), np.float32)).shape[0] == 1
    with pytest.raises(ConfigError, match="exported for batch 1, not 2.*--dynamic-batch"):
        fixed(np.zeros((2, 3, 96, 96), np.float32))


FAMILY_REPS = smallest_per_family()


@pytest.mark.parametrize("name", sorted(FAMILY_REPS.values()))
def test_openvino_export_per_family(name, tmp_path):
    """Every family exports to OpenVINO and runs there in fp32 (precision read back, not assumed)."""
    pytest.importorskip("openvino")
    torch.manual_seed(0)
    s = small_size(name)
    model = nontrivial_bn(ev.create_model(name), name, (s, s)).eval()
    r = export(model, tmp_path / "m.xml", fmt="openvino", resolution=(s, s))
    assert r.precision == "fp32" and r.runtime == "openvino" and (tmp_path / "m.bin").exists()
    # a dynamic batch really is dynamic (no batch size baked into reshapes)
    from edgevision.deploy.targets import open_session
    d = export(model, tmp_path / "d.onnx", resolution=(s, s), dynamic_batch=True)
    x = torch.randn(3, 3, s, s)
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(open_session(d.path)(x.numpy()) - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def test_openvino_channel_layernorm_loses_its_transposes(tmp_path):
    """ConvNeXt's channel LayerNorm (permute, norm over the last axis, permute back) reaches
    OpenVINO fp32/INT8 graphs as one MVN over the channels: no Transpose left, fewer executed
    nodes, same logits (random affine parameters, so a misplaced weight or bias would show)."""
    ov = pytest.importorskip("openvino")
    from edgevision.deploy.ov_rewrites import rewrite
    from edgevision.deploy.targets import open_session
    from edgevision.deploy.targets.openvino import openvino_model
    torch.manual_seed(0)
    model = ev.create_model("convnext_atto", num_classes=12).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    d = export(model, tmp_path / "c.onnx", resolution=(64, 64), dynamic_batch=True)
    plain = ov.convert_model(str(d.path))
    assert sum(op.get_type_name() == "Transpose" for op in plain.get_ops()) == 32
    assert rewrite(ov.convert_model(str(d.path)), "fp32")["channel_layernorm"] == 16
    assert not any(op.get_type_name() == "Transpose" for op in openvino_model(d.path, "fp32").get_ops())
    for precision in (None, "bf16"):  # a saved IR, and bf16 (where the rewrite costs agreement), keep them
        assert sum(op.get_type_name() == "Transpose" for op in openvino_model(d.path, precision).get_ops()) == 32
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(open_session(d.path, "openvino")(x.numpy()) - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
    core = ov.Core()

    def executed(m):  # nodes the CPU plugin runs after its own fusions
        return len(core.compile_model(m, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).get_runtime_model().get_ops())
    assert executed(openvino_model(d.path, "fp32")) < executed(plain)


def test_openvino_split_conv_becomes_one_conv_per_part(tmp_path):
    """EfficientViT-M's per-head qkv conv + split reaches OpenVINO as one conv per part, at every
    precision (the same dot products), with bit-identical logits (BatchNorm biases randomized, so
    the bias slices are exercised)."""
    ov = pytest.importorskip("openvino")
    from edgevision.deploy.targets import open_session
    from edgevision.deploy.targets.openvino import openvino_model
    torch.manual_seed(0)
    model = randomize_bn(ev.create_model("efficientvit_m0", num_classes=12)).eval()
    d = export(model, tmp_path / "e.onnx", resolution=(64, 64), dynamic_batch=True)
    splits = sum(op.get_type_name() == "VariadicSplit" for op in ov.convert_model(str(d.path)).get_ops())
    assert splits >= 6
    for precision in (None, "fp32", "bf16", "int8"):
        assert not any(op.get_type_name() == "VariadicSplit" for op in openvino_model(d.path, precision).get_ops())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x).numpy()
    assert np.abs(open_session(d.path, "openvino")(x.numpy()) - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())


def test_failed_verification_writes_nothing(tmp_path):
    model = ev.create_model("mobilenetv3_small_075").eval()
    with pytest.raises(ExportError, match="nothing was written"):
        export(model, tmp_path / "m.onnx", resolution=(64, 64), atol=0.0 - 1.0)
    assert list(tmp_path.iterdir()) == []


def test_bad_format(tmp_path):
    with pytest.raises(ConfigError, match="unsupported format"):
        export(ev.create_model("mobilenetv3_small_075"), tmp_path / "m.tflite", fmt="tflite")


@pytest.mark.parametrize("name", ["mobilevit_xxs", "mobilevitv2_050", "efficientvit_m0"])
def test_export_graph_does_not_depend_on_memory_format(name, tmp_path):
    """Channels-last models (the default for these families) export the same NCHW graph as their
    NCHW copies: no NHWC<->NCHW transposes left by layout-dependent code paths."""
    import collections

    import onnx
    s = small_size(name)
    counts = []
    for channels_last in (True, False):
        model = ev.create_model(name, channels_last=channels_last).eval()
        export(model, tmp_path / f"{channels_last}.onnx", resolution=(s, s))
        g = onnx.load(str(tmp_path / f"{channels_last}.onnx")).graph
        counts.append(collections.Counter(n.op_type for n in g.node))
    assert counts[0] == counts[1]


def test_targets_table_lists_each_runtime_once():
    """Every runtime is in the table, each module giving the whole protocol, with distinct formats
    and file suffixes; an unknown runtime or format names the choices."""
    from edgevision.deploy.targets import TARGETS, get_target, open_session, target_for_format
    assert list(TARGETS) == ["onnxruntime", "openvino", "executorch", "litert", "coreml"]
    assert len({t.SUFFIX for t in TARGETS.values()}) == len({t.FORMAT for t in TARGETS.values()}) == 5
    for name, t in TARGETS.items():
        assert t.NAME == name and get_target(name) is t and target_for_format(t.FORMAT) is t
        assert t.SUFFIX.startswith(".") and t.SOURCE in ("onnx", "torch") and "minmax" in t.METHODS
        assert all(callable(getattr(t, f)) for f in ("session", "build", "check_output", "install", "int8"))
    with pytest.raises(ConfigError, match="unsupported runtime 'tensorrt'; choose one of onnxruntime, openvino, executorch, "
                       "litert, coreml"):
        get_target("tensorrt")
    with pytest.raises(ConfigError, match="unsupported runtime 'tflite'"):
        open_session("m.onnx", "tflite")


def test_export_report_json_round_trip(tmp_path):
    import json
    r = export(ev.create_model("mobilenetv3_small_075").eval(), tmp_path / "m.onnx", resolution=(32, 32))
    back = ExportReport.from_json(json.loads(json.dumps(r.to_json())))
    assert back == r and back.summary() == r.summary()
    assert isinstance(back.path, type(r.path)) and back.resolution == (32, 32)
