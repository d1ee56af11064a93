"""load_weights: read a file, detect/convert its layout, check it fits, load it."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torch import nn

from ..errors import WeightsError
from .io import read_state_dict

SOURCES = ("auto", "edgevision", "timm", "torchvision", "efficientnet_pytorch", "official")


@dataclass
class LoadReport:
    source: str
    loaded: int
    skipped: list[str] = field(default_factory=list)  # keys not loaded (strict=False only)
    missing: list[str] = field(default_factory=list)  # model keys left at their init (strict=False)


def _inner(model: nn.Module) -> nn.Module:
    """The EdgeModel behind a features_only wrapper."""
    return model.model if hasattr(model, "out_indices") and hasattr(model, "model") else model


def detect_source(sd: dict, model: nn.Module, meta: dict) -> str:
    if meta.get("format") == "edgevision":
        return "edgevision"
    own = set(model.state_dict())
    if len(own & set(sd)) >= 0.9 * len(own):
        return "edgevision"
    from .effnet_pytorch import looks_like_effnet_pytorch
    from .timm import looks_like_timm
    from .torchvision_convert import looks_like_torchvision
    from .official import detect_official
    if looks_like_effnet_pytorch(sd):
        return "efficientnet_pytorch"
    if detect_official(sd) is not None:
        return "official"
    if looks_like_torchvision(sd):
        return "torchvision"
    if looks_like_timm(sd, model):
        return "timm"
    raise WeightsError(
        f"cannot tell which library wrote these weights (first keys: {list(sd)[:4]}); name it "
        f"with `edgevision convert --source` (Python: source=), one of {', '.join(SOURCES[1:])}")


def convert(sd: dict, model: nn.Module, source: str) -> dict:
    if source == "edgevision":
        return sd
    if source == "timm":
        from .timm import convert_timm
        return convert_timm(sd, model)
    if source == "torchvision":
        from .torchvision_convert import convert_torchvision
        return convert_torchvision(sd, model)
    if source == "official":
        from .official import convert_official
        return convert_official(sd, model)
    if source == "efficientnet_pytorch":
        from .effnet_pytorch import convert_effnet_pytorch
        return convert_effnet_pytorch(sd, model)
    raise WeightsError(f"unknown weights source {source!r}; choose one of {', '.join(SOURCES)}")


def check_fit(sd: dict, model: nn.Module, strict: bool, what: str) -> tuple[dict, list, list]:
    """Compare keys and shapes; raise listing every problem (strict) or drop what does not fit."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    mismatched = [k for k in sd if k in own and tuple(sd[k].shape) != tuple(own[k].shape)]
    if strict and (missing or unexpected or mismatched):
        name = getattr(model, "model_name", type(model).__name__)
        parts = []
        if mismatched:
            parts.append("shape mismatch: " + ", ".join(
                f"{k} {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}" for k in mismatched[:5]))
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:4])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:4])})")
        hint = " They look like weights of another architecture or variant." \
            if len(missing) + len(mismatched) > 0.2 * len(own) else \
            (" To use them with another number of classes, fine-tune with `edgevision train "
             "--weights FILE` (the head is re-initialised; Python: strict=False), or pass "
             "--num-classes to match the file.")
        raise WeightsError(f"{what} do not fit {name}: " + "; ".join(parts) + "." + hint)
    skipped = unexpected + mismatched
    kept = {k: v for k, v in sd.items() if k in own and k not in mismatched}
    return kept, skipped, missing


def load_weights(model: nn.Module, path: str | os.PathLike, source: str = "auto",
                 strict: bool = True) -> LoadReport:
    """Load weights from ``path`` into ``model`` (in place) and report what was loaded.

    ``source``: "auto" (detect from the keys), "edgevision" or "timm". Files are read safely
    (safetensors, or torch.load with weights_only=True). With ``strict=True`` every key and shape
    must match; ``strict=False`` skips keys that do not fit (e.g. a classifier of another size).
    """
    if source not in SOURCES:
        raise WeightsError(f"unknown weights source {source!r} (--source); choose one of {', '.join(SOURCES)}")
    target = _inner(model)
    sd, meta = read_state_dict(path)
    if source == "auto":
        source = detect_source(sd, target, meta)
    sd = convert(sd, target, source)
    what = f"weights in {os.fspath(path)!r} ({source})"
    saved_for = meta.get("model")
    if saved_for and saved_for != getattr(target, "model_name", saved_for):
        what += f", saved from model {saved_for!r},"
    kept, skipped, missing = check_fit(sd, target, strict, what)
    with torch.no_grad():
        target.load_state_dict(kept, strict=strict)
    _adopt_input_config(model, target, meta)
    _adopt_class_names(model, target, meta)
    return LoadReport(source, len(kept), skipped, missing)


def _adopt_input_config(model: nn.Module, target: nn.Module, meta: dict) -> None:
    """The weights' preprocessing travels with them: an input_config in the file's metadata
    (resolution, mean/std, interpolation, crop) replaces the architecture's default."""
    import dataclasses
    import json
    raw = meta.get("input_config")
    if not raw or not hasattr(target, "input_config"):
        return
    try:
        d = json.loads(raw)
        d["input_size"], d["mean"], d["std"] = tuple(d["input_size"]), tuple(d["mean"]), tuple(d["std"])
        cfg = dataclasses.replace(target.input_config, **d)
    except (ValueError, TypeError, KeyError):
        return
    if cfg.input_size[0] != target.input_config.input_size[0]:
        return
    target.input_config = cfg
    if model is not target:
        model.input_config = cfg


def _adopt_class_names(model: nn.Module, target: nn.Module, meta: dict) -> None:
    """Class names recorded with the weights (a fine-tuned folder's classes) go with the model, so
    an export stores them beside the preprocessing."""
    import json
    try:
        names = json.loads(meta.get("classes") or "[]")
    except ValueError:
        return
    if isinstance(names, list) and len(names) == getattr(target, "num_classes", -1):
        for m in {id(model): model, id(target): target}.values():
            m.class_names = [str(n) for n in names]


def create_with_weights(name: str, path: str | os.PathLike, num_classes: int | None = None, **kwargs):
    """``create_model(name)`` sized for the weights in ``path`` (classifier size from the file's
    metadata or its classifier tensor), with the weights loaded. Returns the model in eval mode.
    ``path`` may also be ``"pretrained"`` or ``"pretrained:TAG"``: the published weights."""
    import json
    from ..factory import create_model
    from .pretrained import create_pretrained, parse_ref
    tag = parse_ref(path)
    if tag is not None:
        return create_pretrained(name, tag, num_classes=num_classes, **kwargs)
    sd, meta = read_state_dict(path)
    if meta.get("spec_overrides"):  # e.g. bn_eps of weights converted from another library
        kwargs = {**json.loads(meta["spec_overrides"]), **kwargs}
    if num_classes is None:
        if meta.get("num_classes", "").isdigit():
            num_classes = int(meta["num_classes"])
        else:
            probe = create_model(name, num_classes=1000, **kwargs)
            head = [k for k, v in probe.state_dict().items() if v.ndim >= 1 and v.shape[0] == 1000]
            num_classes = sd[head[-1]].shape[0] if head and head[-1] in sd else 1000
    model = create_model(name, num_classes=num_classes, **kwargs)
    load_weights(model, path)
    return model.eval()
