"""What `optimize` may try on this machine: runtime x precision x INT8 recipe, cheapest and most
promising first.

A candidate is one artifact built one way: the verified fp32 export in a runtime, the same
graph run in bf16 (OpenVINO, only where the CPU computes bf16 natively), or an INT8 graph made
with one ``QuantRecipe``. Which INT8 recipes are tried per family follows the measurements of
docs/deploy.md ("Which reduced-precision path, per family"): global min/max ranges everywhere,
the squeeze-excite FCs quantized too for the SE families, NNCF's own ranges for RepViT (its
token mixers' rare large activations), NNCF's transformer type for ConvNeXt and the attention
families. Where the CPU has native bf16, the default INT8 IR is also tried with its unquantized
ops in bf16. Every graph is the reparameterized one (export's default: it quantizes at least as
well as the plain graph and gains more from INT8) in NCHW (a channels-last input only moves
LiteRT's one transpose into the caller, for no measurable gain); NNCF's accuracy control is not
a candidate (it was never the fastest verified path: where plain INT8 keeps the agreement it
reverts little, elsewhere most layers; docs/deploy.md). The reference, always the first
candidate, is onnxruntime fp32.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
from dataclasses import dataclass

from ..bench.latency import cpu_flags
from ..deploy.recipe import QuantRecipe
from ..deploy.session import RuntimeMissing
from ..errors import ConfigError

RUNTIMES = ("onnxruntime", "openvino", "executorch", "litert")
# the modules each runtime needs (its INT8 toolkit included) and the pip line that installs them
NEEDS = {"onnxruntime": (("onnxruntime",), "onnxruntime"), "openvino": (("openvino", "nncf"), "openvino nncf"),
         "executorch": (("executorch",), "-e '.[mobile]'"),
         "litert": (("litert_torch", "ai_edge_litert"), "-e '.[mobile]'")}
# runtimes whose graphs are built from the PyTorch module for batch 1 (phone runtimes)
BATCH1_ONLY = ("executorch", "litert")

_OV = QuantRecipe(runtime="openvino")
# family -> the OpenVINO INT8 recipes worth trying besides the default (docs/deploy.md)
_SE = {"quantize SE": dataclasses.replace(_OV, quantize_se=True)}
_NNCF_RANGES = {"NNCF ranges": dataclasses.replace(_OV, method="nncf")}
_TRANSFORMER = {"transformer": dataclasses.replace(_OV, transformer=True)}
FAMILY_RECIPES = {"mobilenetv3": _SE, "efficientnet": _SE, "efficientnetv2": _SE, "repvit": _NNCF_RANGES,
                  "convnext": _TRANSFORMER, "convnextv2": _TRANSFORMER, "efficientvit_mit": _TRANSFORMER,
                  "efficientvit_msra": _TRANSFORMER, "mobilevit": _TRANSFORMER, "mobilevitv2": _TRANSFORMER,
                  "mobilenetv4_hybrid": _TRANSFORMER, "edgevision_mswa": _TRANSFORMER}
# the recipe docs/deploy.md found fastest among those that keep 99 % agreement, tried first
BEST_FIRST = {"mobilenetv3": "quantize SE", "repvit": "NNCF ranges", "convnext": "transformer",
              "convnextv2": "transformer"}


@dataclass(frozen=True)
class Candidate:
    """One way to deploy the model. ``precision``: what the session is asked to run (fp32, bf16,
    int8); ``recipe``: the INT8 recipe (None for fp32/bf16); ``base``: the candidate whose
    artifact this one runs (bf16 runs the OpenVINO fp32 IR)."""
    name: str
    runtime: str
    precision: str
    recipe: QuantRecipe | None = None
    base: str | None = None

    @property
    def reference(self) -> bool:
        return self.runtime == "onnxruntime" and self.precision == "fp32"

    @property
    def batch1_only(self) -> bool:
        return self.runtime in BATCH1_ONLY

    def to_json(self) -> dict:
        recipe = None
        if self.recipe is not None:
            recipe = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self.recipe).items()
                      if k not in ("calib", "images", "held_out")}  # set per run, part of the run's key
        return {"name": self.name, "runtime": self.runtime, "precision": self.precision, "recipe": recipe,
                "base": self.base}

    @property
    def key(self) -> str:
        """A file-name-safe id that changes when anything that makes the artifact changes."""
        digest = hashlib.sha1(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:8]
        return "-".join(self.name.replace("+", "").split()) + f"-{digest}"


def installed(runtime: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in NEEDS[runtime][0])


def native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX-512-bf16 or AMX): elsewhere it is emulated."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def select_runtimes(runtimes) -> tuple[list[str], list[str]]:
    """(runtimes to search, notes on those left out). ``runtimes``: None (every installed one) or
    names; a requested runtime that is not installed is an error naming the pip command."""
    if isinstance(runtimes, str):
        runtimes = [r.strip() for r in runtimes.split(",") if r.strip()]
    if not installed("onnxruntime"):  # the reference every candidate is compared with
        raise RuntimeMissing("onnxruntime is not installed; optimize compares every candidate with "
                             "onnxruntime fp32: install it with `.venv/bin/pip install onnxruntime`")
    if runtimes is None:
        chosen = [r for r in RUNTIMES if installed(r)]
        notes = [f"{r}: not installed (`pip install {NEEDS[r][1]}`)" for r in RUNTIMES if r not in chosen]
        return chosen, notes
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown or not runtimes:
        raise ConfigError(f"unknown runtime {', '.join(unknown) or '(none)'}; --runtimes takes a "
                          f"comma-separated list of {', '.join(RUNTIMES)}")
    for r in runtimes:
        if not installed(r):
            missing = [m for m in NEEDS[r][0] if importlib.util.find_spec(m) is None]
            raise RuntimeMissing(f"runtime {r} is requested but {', '.join(missing)} is not installed; "
                                 f"install it with `.venv/bin/pip install {NEEDS[r][1]}` or drop it from "
                                 f"--runtimes")
    return list(dict.fromkeys(runtimes)), []


def enumerate_candidates(family: str, runtimes: list[str], batches) -> tuple[list[Candidate], list[str]]:
    """The candidates for a model of ``family`` on ``runtimes``, in the order they are tried
    (the reference first, then cheap conversions, the family's best-known INT8 recipe, the other
    INT8 recipes, the phone runtimes last: minutes per artifact), and notes on what is left out."""
    notes = []
    cands = [Candidate("onnxruntime fp32", "onnxruntime", "fp32")]
    if "openvino" in runtimes:
        cands.append(Candidate("openvino fp32", "openvino", "fp32"))
        if native_bf16():
            cands.append(Candidate("openvino bf16", "openvino", "bf16", base="openvino fp32"))
        else:
            notes.append("openvino bf16: this CPU has no native bf16 (AVX-512-bf16/AMX)")
        extra = FAMILY_RECIPES.get(family, {})
        ov = [Candidate(f"openvino int8 {label}", "openvino", "int8", r) for label, r in extra.items()]
        default = Candidate("openvino int8", "openvino", "int8", _OV)
        best = BEST_FIRST.get(family)
        cands += [c for c in ov if c.name.endswith(str(best))] + [default] + \
                 [c for c in ov if not c.name.endswith(str(best))]
        if native_bf16():  # the same IR, its unquantized ops in bf16: no new artifact
            cands.append(Candidate("openvino int8 + bf16", "openvino", "int8-bf16", base="openvino int8"))
    if "onnxruntime" in runtimes:
        cands.append(Candidate("onnxruntime int8", "onnxruntime", "int8", QuantRecipe()))
    phones = [r for r in ("litert", "executorch") if r in runtimes]
    if phones and 1 not in batches:
        notes += [f"{r}: its graphs run batch 1 only, which --batch does not include" for r in phones]
        phones = []
    cands += [Candidate(f"{r} int8", r, "int8", QuantRecipe(runtime=r)) for r in phones]
    cands += [Candidate(f"{r} fp32", r, "fp32") for r in phones]
    return cands, notes
