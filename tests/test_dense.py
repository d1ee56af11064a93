"""Dense prediction: every backbone plugs into an FPN with exact strides/channels; detectors and
the segmenter train, evaluate and export; bad targets are handled as documented."""
import pytest
import torch

import edgevision as ev
from edgevision.dense import DenseBackbone, build_detector, build_segmenter
from edgevision.dense.data import DenseDataError, EmbeddedDense, check_target, collate
from edgevision.dense.train import DenseConfig, train_dense

from conftest import ALL_MODELS, registry_param


@pytest.mark.parametrize("name", [registry_param(n) for n in ALL_MODELS])
def test_every_backbone_feeds_an_fpn(name):
    strides = [f.reduction for f in ev.create_model(name, features_only=True).feature_info]
    want = tuple(s for s in (8, 16, 32) if s in strides)
    bb = DenseBackbone(name, want, fpn_channels=32, extra="p6p7").eval()
    with torch.no_grad():
        out = bb(torch.randn(1, 3, 128, 160))
    assert list(out) == ["0", "1", "2", "p6", "p7"][: len(want)] + ["p6", "p7"]
    for k, s in zip(out, want):
        assert out[k].shape[1] == 32
        assert out[k].shape[2] in (128 // s, -(-128 // s)) and out[k].shape[3] in (160 // s, -(-160 // s))


@pytest.mark.parametrize("kind", ["retinanet", "fasterrcnn", "ssdlite"])
def test_detectors_train_step_and_eval(kind):
    ds = EmbeddedDense("train", 4, 128)
    imgs, ts = collate([ds[i] for i in (1, 2, 3)])
    model = build_detector(kind, "mobilenetv3_small_075", 6, 128)
    losses = model(list(imgs), [{"boxes": t["boxes"], "labels": t["labels"]} for t in ts])
    loss = sum(losses.values())
    loss.backward()
    assert torch.isfinite(loss)
    model.eval()
    with torch.no_grad():
        out = model(list(imgs))
    assert len(out) == 3 and set(out[0]) >= {"boxes", "scores", "labels"}


def test_segmentation_and_train_loop(tmp_path):
    seg = build_segmenter("mobilenetv4_conv_small", 6)
    assert seg(torch.rand(2, 3, 96, 128)).shape == (2, 7, 96, 128)
    res = train_dense(DenseConfig(task="segmentation", model="mobilenetv3_small_075", out=str(tmp_path / "s"),
                                  epochs=1, batch_size=4, train_size=8, val_size=4, resolution=64, workers=0),
                      log=lambda m: None)
    assert 0 <= res["miou"] <= 100 and (tmp_path / "s" / "best.pt").exists()
    res = train_dense(DenseConfig(task="detection", model="mobilenetv3_small_075", out=str(tmp_path / "d"),
                                  detector="fasterrcnn", epochs=1, batch_size=4, train_size=8, val_size=4,
                                  resolution=64, workers=0), log=lambda m: None)
    assert 0 <= res["map"] <= 100


def test_target_handling():
    # no boxes: a valid negative image
    t = check_target({"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.int64)}, 64, 64)
    assert t["boxes"].shape == (0, 4)
    # boxes outside are clipped; empty after clipping are dropped
    t = check_target({"boxes": torch.tensor([[-10.0, 5, 20, 30], [70, 70, 90, 90]]), "labels": torch.tensor([1, 2])},
                     64, 64)
    assert t["boxes"].tolist() == [[0.0, 5.0, 20.0, 30.0]] and t["labels"].tolist() == [1]
    with pytest.raises(DenseDataError, match="masks must be"):
        check_target({"boxes": torch.tensor([[0.0, 0, 5, 5]]), "labels": torch.tensor([1]),
                      "masks": torch.zeros(1, 32, 32)}, 64, 64)
    with pytest.raises(DenseDataError, match="background"):
        check_target({"boxes": torch.tensor([[0.0, 0, 5, 5]]), "labels": torch.tensor([0])}, 64, 64)
    ds = EmbeddedDense("val", 11, 64)
    assert len(ds[0][1]["boxes"]) == 0 and len(ds[1][1]["boxes"]) >= 1  # every 10th image is empty


@pytest.mark.parametrize("kind", ["ssdlite", "fasterrcnn"])
def test_detector_exports_to_onnx(kind, tmp_path):
    pytest.importorskip("onnxruntime")
    from edgevision.dense.deploy import export_detector, time_onnx
    torch.manual_seed(0)
    model = build_detector(kind, "mobilenetv3_small_075", 6, 96)
    r = export_detector(model, tmp_path / "det.onnx", 96)
    assert r["detections"] > 0 and r["box_diff_px"] < 0.1
    assert time_onnx(tmp_path / "det.onnx", 96, budget_s=0.2) > 0


# ---- phone formats: the segmenter, and the SSDLite network without its post-processing ----------

PHONE_SUFFIX = {"executorch": ".pte", "litert": ".tflite", "coreml": ".mlpackage"}


def _dense(kind: str, size: int):
    from edgevision.dense.deploy import mobile_network
    torch.manual_seed(0)
    model = build_segmenter("mobilenetv3_small_075", 6) if kind == "lraspp" else \
        build_detector(kind, "mobilenetv3_small_075", 6, size)
    return model.eval(), mobile_network(model.eval(), size)


def test_detector_network_decodes_to_the_detectors_detections():
    """The exported SSDLite network's (anchors, 4 + classes) output, decoded with the detector's
    own anchors and post-processing (what an app does after the phone runtime), gives the
    detector's detections."""
    model, net = _dense("ssdlite", 96)
    x = EmbeddedDense("test", 3, 96)[1][0]
    with torch.no_grad():
        ref = model([x])[0]
        out = net(x[None])
        images = model.transform([x])[0]
        feats = list(model.backbone(images.tensors).values())
        head = {"bbox_regression": out[..., :4], "cls_logits": out[..., 4:]}
        got = model.postprocess_detections(head, model.anchor_generator(images, feats), images.image_sizes)[0]
    assert out.shape[-1] == 4 + 7 and len(ref["boxes"]) > 0
    assert torch.allclose(got["boxes"], ref["boxes"], atol=1e-4) and torch.equal(got["labels"], ref["labels"])


def test_two_stage_detector_is_refused_for_phone_formats():
    from edgevision.deploy.export import ExportError
    with pytest.raises(ExportError, match="only SSDLite detectors export to the phone formats.*export_detector"):
        _dense("fasterrcnn", 96)


def _phone_export(kind: str, fmt: str, tmp_path, size: int = 64):
    pytest.importorskip({"executorch": "executorch", "litert": "litert_torch", "coreml": "coremltools"}[fmt])
    from edgevision.deploy.export import export, read_metadata
    _, net = _dense(kind, size)
    out = tmp_path / f"{kind}{PHONE_SUFFIX[fmt]}"
    r = export(net, out, fmt=fmt, resolution=(size, size))
    assert r.max_abs_diff.keys() and read_metadata(out)["model"] == f"{kind}_mobilenetv3_small_075"
    if fmt != "coreml":  # verified by running it against PyTorch; fully delegated to XNNPACK
        assert r.precision == "fp32" and max(r.max_abs_diff.values()) < 1e-4, r.max_abs_diff
        assert r.notes[0].startswith("XNNPACK: ") and "left to" not in r.notes[0], r.notes
    else:  # the package's output says what it holds
        import coremltools as ct
        outputs = [o.name for o in ct.utils.load_spec(str(out)).description.output]
        assert outputs == [OUTPUT_NAME[kind]], outputs
    return r


OUTPUT_NAME = {"lraspp": "logits", "ssdlite": "boxes_and_logits"}


@pytest.mark.parametrize("kind", ["lraspp", "ssdlite"])
def test_dense_output_is_named_by_what_it_holds(kind, tmp_path):
    """A detector's exported output is its per-anchor boxes and class logits, named so; a
    segmenter's is per-pixel logits."""
    import onnx
    from edgevision.deploy.export import export
    _, net = _dense(kind, 64)
    export(net, tmp_path / "m.onnx", resolution=(64, 64))
    assert [o.name for o in onnx.load(str(tmp_path / "m.onnx")).graph.output] == [OUTPUT_NAME[kind]]


@pytest.mark.slow  # 15-50 s each: the conversion
@pytest.mark.parametrize("fmt", list(PHONE_SUFFIX))
@pytest.mark.parametrize("kind", ["lraspp", "ssdlite"])
def test_dense_exports_to_phone_formats(kind, fmt, tmp_path):
    _phone_export(kind, fmt, tmp_path)
