"""Safe weight-file io. Nothing here ever unpickles arbitrary objects: .safetensors files are read
with safetensors, and .pth/.pt/.bin files with ``torch.load(weights_only=True)``."""
from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch

from ..errors import WeightsError
from ..files import atomic_write

_NESTED_KEYS = ("state_dict", "model", "model_ema", "state_dict_ema", "module", "net")


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a state dict and its metadata (safetensors header metadata; {} for torch files).

    Nested checkpoints (``{"state_dict": ...}``, ``{"model": ...}``, EMA copies) and the
    ``module.`` prefix of DataParallel/DDP are unwrapped.
    """
    path = Path(path)
    _check_weight_file(path)
    if path.suffix == ".safetensors" or _is_safetensors(path):
        from safetensors import SafetensorError, safe_open
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = dict(f.metadata() or {})
                sd = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as e:
            raise WeightsError(f"{path} is not a readable .safetensors file ({e}); re-save or "
                               f"re-download it") from None
        return _strip_prefix(sd), meta
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise WeightsError(
            f"refused to load {path}: it contains Python objects other than tensors, which could "
            f"execute code ({str(e).splitlines()[0][:160]}). Convert it to .safetensors in a trusted "
            f"environment.") from None
    except Exception as e:  # torch raises many kinds (KeyError, RuntimeError, EOFError...) on junk
        raise WeightsError(f"{path} is not a readable PyTorch weight file ({str(e)[:160]}); it may "
                           f"be truncated or of another format") from None
    return _strip_prefix(_unwrap(obj, path)), {}


# exported models, which are not weight files: suffix -> what it is
_ARTIFACTS = {".onnx": "an exported ONNX model", ".xml": "an exported OpenVINO model",
              ".pte": "an exported ExecuTorch program", ".tflite": "an exported LiteRT model",
              ".mlpackage": "an exported Core ML package"}
_WEIGHT_FILES = "weight files are .safetensors files or PyTorch state dicts (.pth, .pt, .bin)"


def _check_weight_file(path: Path) -> None:
    """One clear error for what is not a weight file: nothing there, a folder, an exported model,
    or bytes that are neither safetensors nor a PyTorch checkpoint."""
    if path.is_dir() and path.suffix not in _ARTIFACTS:
        inside = sorted(p.name for p in path.iterdir() if p.suffix in (".safetensors", ".pth", ".pt"))
        hint = f" (it holds {', '.join(inside[:4])})" if inside else ""
        raise WeightsError(f"{str(path)!r} is a folder, not a weight file{hint}; pass the file itself")
    if path.suffix.lower() in _ARTIFACTS:
        raise WeightsError(f"{str(path)!r} is {_ARTIFACTS[path.suffix.lower()]}, not a weight file: "
                           f"`edgevision predict IMAGES --weights {path}` runs it as it is; {_WEIGHT_FILES}")
    if not path.exists():
        raise WeightsError(f"weight file {str(path)!r} does not exist")
    if not path.is_file():
        raise WeightsError(f"{str(path)!r} is not a regular file; {_WEIGHT_FILES}")
    with open(path, "rb") as f:
        head = f.read(16)
    if path.suffix == ".safetensors" or head[:4] == b"PK\x03\x04" or head[:1] == b"\x80" \
            or head[8:9] == b"{":  # torch zip, legacy pickle, safetensors (header length + JSON)
        return
    raise WeightsError(f"{str(path)!r} is not a weight file (neither safetensors nor a PyTorch "
                       f"checkpoint; it starts with {head[:8]!r}); {_WEIGHT_FILES}")


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(9)[8:9] == b"{"


def _unwrap(obj, path) -> dict[str, torch.Tensor]:
    for _ in range(3):
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return obj
        if isinstance(obj, dict):
            for key in _NESTED_KEYS:
                if key in obj and isinstance(obj[key], dict):
                    obj = obj[key]
                    break
            else:
                break
        else:
            break
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise WeightsError(f"{path} holds no state dict (found {type(obj).__name__} "
                       f"{list(obj)[:5] if isinstance(obj, dict) else ''}); expected a mapping of "
                       f"parameter names to tensors")


def _strip_prefix(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for prefix in ("module.", "_orig_mod."):
        if sd and all(k.startswith(prefix) for k in sd):
            sd = {k[len(prefix):]: v for k, v in sd.items()}
    return sd


def spec_overrides(model) -> dict:
    """Scalar spec fields where ``model`` differs from its registered variant (e.g. bn_eps for
    weights converted from a library that trained with another epsilon)."""
    import dataclasses
    name = getattr(model, "model_name", None)
    if not name or not hasattr(model, "spec"):
        return {}
    from ..registry import get_entry
    base = get_entry(name).spec
    out = {}
    for f in dataclasses.fields(model.spec):
        v = getattr(model.spec, f.name)
        if v != getattr(base, f.name) and isinstance(v, (int, float, str, bool, type(None))):
            out[f.name] = v
    return out


def save_weights(model: torch.nn.Module, path: str | os.PathLike, extra_meta: dict | None = None, *,
                 state_dict: dict[str, torch.Tensor] | None = None, resolution: int | None = None) -> Path:
    """Save ``model``'s weights as .safetensors with its name and input config in the metadata
    (written atomically). ``state_dict`` replaces the model's own tensors (e.g. its EMA copy);
    ``resolution`` (the size the weights were trained at) becomes their default input size."""
    import dataclasses
    from safetensors.torch import save_file
    path = Path(path)
    if path.suffix != ".safetensors":
        raise WeightsError(f"save_weights writes .safetensors files; got {path.name!r}")
    inner = getattr(model, "model", model) if not hasattr(model, "spec") or not hasattr(model, "trunk") else model
    sd = state_dict if state_dict is not None else inner.state_dict()
    sd = {k: v.detach().contiguous().clone() for k, v in sd.items()}
    meta = {"format": "edgevision", "model": str(getattr(inner, "model_name", "")),
            "num_classes": str(getattr(inner, "num_classes", "")),
            "in_chans": str(getattr(inner, "in_chans", ""))}
    cfg = getattr(inner, "input_config", None)
    if cfg is not None:
        if resolution:
            cfg = dataclasses.replace(cfg, input_size=(cfg.input_size[0], resolution, resolution))
        meta["input_config"] = json.dumps(dataclasses.asdict(cfg))
    overrides = spec_overrides(inner)
    if overrides:
        meta["spec_overrides"] = json.dumps(overrides)
    if extra_meta:
        meta.update({k: str(v) for k, v in extra_meta.items()})
    with atomic_write(path, ".safetensors") as tmp:
        save_file(sd, str(tmp), metadata=meta)
    return path
