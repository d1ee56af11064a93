"""The two EfficientViTs' official-repository checkpoints <-> edgevision's keys.

**MIT EfficientViT-B** (mit-han-lab/efficientvit, ``efficientvit_cls_b0..b3``; files hold the
bare state dict or ``{"state_dict": ...}``). ``EfficientViTCls`` = ``backbone`` + ``head``; every
sequence is an ``OpSequential`` (``op_list.i``), convs are ``ConvLayer`` (``conv``, ``norm``),
linears ``LinearLayer`` (``linear``, ``norm``), residuals ``ResidualBlock`` (``main``; the
shortcut is parameter-free). ``backbone.input_stem.op_list.0`` stem conv, ``.op_list.i`` (i >= 1)
residual DSConv ``main.{depth_conv, point_conv}``; ``backbone.stages.s.op_list.0.main`` the
stride-2 MBConv (``inverted_conv, depth_conv, point_conv``), then ``.op_list.j.main`` residual
MBConvs (stages 0-1) or EfficientViT blocks ``.op_list.j.{context_module, local_module}.main``
(LiteMLA ``qkv.conv``, ``aggreg.0.{0,1}``, ``proj.{conv,norm}``; MBConv). Head: ``head.op_list.0``
ConvLayer, ``.1`` pooling, ``.2`` LinearLayer with LayerNorm (``linear``, ``norm``), ``.3``
classifier (``linear``). Ours: ``stem.{in_conv, res<i>.m}``, ``stages.s.blocks.j[.m]``, ``bn``
for ``norm``, ``head_in``, ``pre_logits.{fc, ln}``, ``classifier``.

**Microsoft EfficientViT-M** (microsoft/Cream ``EfficientViT/classification``, files
``{"model": ...}``). ``Conv2d_BN`` = ``c`` + ``bn``; ``patch_embed`` a Sequential with the four
Conv2d_BN at 0, 2, 4, 6 (ReLUs between); ``blocks1`` the stage-0 blocks; ``blocks2``/``blocks3``
open with the downsampling: ``.0`` Sequential(Residual DW conv, Residual FFN), ``.1``
PatchMerging (``conv1, conv2, se.{fc1, fc2}, conv3``), ``.2`` like ``.0``, then the blocks from
index 3. A block: ``dw0, ffn0, mixer, dw1, ffn1``, each ``Residual`` (``m``); FFN ``pw1, pw2``;
``mixer.m.attn`` = CascadedGroupAttention (``qkvs.i``, ``dws.i``, ``proj.1``,
``attention_biases`` and the persistent buffer ``attention_bias_idxs``); head ``BN_Linear``
(``bn``, ``l``). ``attention_bias_idxs`` is derived (offset id by first occurrence, which is
``|dy| * r + |dx|``): dropped on the way in (after checking it), rebuilt on the way out.
"""
from __future__ import annotations

import itertools
import math
import re

import torch

from ..errors import WeightsError
from .keys import OfficialLayout


def _bad(repo: str, k: str) -> WeightsError:
    return WeightsError(f"unexpected key {k!r} in a {repo} EfficientViT checkpoint")


# ------------------------------------------------------------------ MIT EfficientViT-B
_MIT = "mit-han-lab/efficientvit"
_MIT_HEAD = (("pre_logits.fc.", "head.op_list.2.linear."), ("pre_logits.ln.", "head.op_list.2.norm."),
             ("classifier.", "head.op_list.3.linear."))


def looks_like_official_efficientvit_mit(sd: dict) -> bool:
    return any(k.startswith("backbone.input_stem.op_list.") for k in sd)


def _bn_to_norm(rest: str) -> str:
    return re.sub(r"(^|\.)bn\.", r"\1norm.", rest)


def _norm_to_bn(rest: str) -> str:
    return re.sub(r"(^|\.)norm\.", r"\1bn.", rest)


def _mit_official_key(k: str) -> str:
    for ours, off in _MIT_HEAD:
        if k.startswith(ours):
            return off + k[len(ours):]
    if k.startswith("head_in."):
        return "head.op_list.0." + _bn_to_norm(k[len("head_in."):])
    if k.startswith("stem.in_conv."):
        return "backbone.input_stem.op_list.0." + _bn_to_norm(k[len("stem.in_conv."):])
    if m := re.fullmatch(r"stem\.res(\d+)\.m\.(.+)", k):
        return f"backbone.input_stem.op_list.{int(m[1]) + 1}.main.{_bn_to_norm(m[2])}"
    if m := re.fullmatch(r"stages\.(\d+)\.blocks\.(\d+)\.(?:(context_module|local_module)\.)?(m\.)?(.+)", k):
        if m[3] or m[4] or m[2] == "0":
            sub = f"{m[3]}.main" if m[3] else "main"
            return f"backbone.stages.{m[1]}.op_list.{m[2]}.{sub}.{_bn_to_norm(m[5])}"
    raise WeightsError(f"no {_MIT} name for edgevision key {k!r}")


def _mit_our_key(k: str) -> str:
    for ours, off in _MIT_HEAD:
        if k.startswith(off):
            return ours + k[len(off):]
    if k.startswith("head.op_list.0."):
        return "head_in." + _norm_to_bn(k[len("head.op_list.0."):])
    if m := re.fullmatch(r"backbone\.input_stem\.op_list\.(\d+)\.(main\.)?(.+)", k):
        if m[1] == "0" and not m[2]:
            return "stem.in_conv." + _norm_to_bn(m[3])
        if m[1] != "0" and m[2]:
            return f"stem.res{int(m[1]) - 1}.m.{_norm_to_bn(m[3])}"
    if m := re.fullmatch(r"backbone\.stages\.(\d+)\.op_list\.(\d+)\."
                         r"(context_module\.|local_module\.)?main\.(.+)", k):
        wrap = "" if m[2] == "0" and not m[3] else "m."  # the stride-2 block 0 has no residual
        return f"stages.{m[1]}.blocks.{m[2]}.{m[3] or ''}{wrap}{_norm_to_bn(m[4])}"
    raise _bad(_MIT, k)


def _only_b(model) -> None:
    """EfficientViT-L's official layout differs (its stem is ``backbone.stages.0``): refused."""
    spec = getattr(model, "spec", None)
    if spec is not None and (spec.stem_block != "dsconv" or spec.fused_stages):
        raise WeightsError(f"{getattr(model, 'model_name', 'EfficientViT-L')}: only {_MIT} EfficientViT-B "
                           f"checkpoints convert, not the L models' layout; load timm's weights "
                           f"(source='timm') instead")


def mit_to_ours(sd: dict, model) -> dict:
    _only_b(model)
    return {_mit_our_key(k): v for k, v in sd.items()}


def mit_to_official(sd: dict, model=None) -> dict:
    _only_b(model)
    return {_mit_official_key(k): v for k, v in sd.items()}


# ------------------------------------------------------------------ Microsoft EfficientViT-M
_MSRA = "microsoft/Cream"
_DOWN = ("res1", "patchmerge", "res2")  # blocks2/3 entries 0, 1, 2
# ours -> official inside a block (applied in order; the reverse undoes them in reverse order)
_MSRA_SUBS = ((".m.conv1.", ".m.pw1."), (".m.conv2.", ".m.pw2."), (".se.conv_reduce.", ".se.fc1."),
              (".se.conv_expand.", ".se.fc2."))


def looks_like_official_efficientvit_msra(sd: dict) -> bool:
    # LeViT's official checkpoints also have patch_embed.0.c but no blocks1
    return "patch_embed.0.c.weight" in sd and any(k.startswith("blocks1.") for k in sd)


def official_bias_idxs(r: int) -> torch.Tensor:
    """``attention_bias_idxs`` of an r x r window as the official code builds it: every (|dy|, |dx|)
    offset gets the next id at its first occurrence, scanning position pairs row-major."""
    pts = list(itertools.product(range(r), range(r)))
    ids: dict[tuple[int, int], int] = {}
    idx = [ids.setdefault((abs(a[0] - b[0]), abs(a[1] - b[1])), len(ids)) for a in pts for b in pts]
    return torch.tensor(idx, dtype=torch.long).view(len(pts), len(pts))


def _msra_official_key(k: str) -> str:
    if k.startswith("head."):
        return k
    if m := re.fullmatch(r"patch_embed\.conv([1-4])\.(.+)", k):
        k = f"patch_embed.{2 * (int(m[1]) - 1)}.{m[2]}"
    elif m := re.fullmatch(r"stages\.(\d+)\.downsample\.(res1|patchmerge|res2)\.(.+)", k):
        k = f"blocks{int(m[1]) + 1}.{_DOWN.index(m[2])}.{m[3]}"
    elif m := re.fullmatch(r"stages\.(\d+)\.blocks\.(\d+)\.(.+)", k):
        s = int(m[1])
        k = f"blocks{s + 1}.{int(m[2]) + (3 if s else 0)}.{m[3]}"
    else:
        raise WeightsError(f"no {_MSRA} name for edgevision key {k!r}")
    for a, b in _MSRA_SUBS:
        k = k.replace(a, b)
    return re.sub(r"(^|\.)conv\.(weight|bias)$", r"\1c.\2", k)


def _msra_our_key(k: str) -> str:
    if re.fullmatch(r"head\.(bn|l)\.\w+", k):
        return k
    if m := re.fullmatch(r"patch_embed\.([0246])\.((?:c|bn)\.\w+)", k):
        k = f"patch_embed.conv{int(m[1]) // 2 + 1}.{m[2]}"
    elif m := re.fullmatch(r"blocks([123])\.(\d+)\.(.+)", k):
        s, i = int(m[1]) - 1, int(m[2])
        if s == 0:
            k = f"stages.0.blocks.{i}.{m[3]}"
        else:
            k = f"stages.{s}.downsample.{_DOWN[i]}.{m[3]}" if i < 3 else f"stages.{s}.blocks.{i - 3}.{m[3]}"
    else:
        raise _bad(_MSRA, k)
    for a, b in reversed(_MSRA_SUBS):
        k = k.replace(b, a)
    return re.sub(r"(^|\.)c\.(weight|bias)$", r"\1conv.\2", k)


def msra_to_ours(sd: dict, model) -> dict:
    own = model.state_dict()
    out = {}
    for k, v in sd.items():
        if k.endswith(".attention_bias_idxs"):
            biases = sd.get(k[: -len("_idxs")] + "es")
            r = math.isqrt(biases.shape[-1]) if biases is not None else 0
            if biases is None or not torch.equal(v.cpu().long(), official_bias_idxs(r)):
                raise WeightsError(f"{k} in a {_MSRA} EfficientViT checkpoint is not the official "
                                   f"offset index of its attention_biases; cannot convert")
            continue
        nk = _msra_our_key(k)
        # the official loader (model/build.py) also takes 1x1 conv weights stored as (out, in)
        if nk in own and v.ndim == 2 and own[nk].ndim == 4 and own[nk].shape[2:] == (1, 1):
            v = v[:, :, None, None]
        out[nk] = v
    return out


def msra_to_official(sd: dict, model=None) -> dict:
    out = {}
    for k, v in sd.items():
        nk = _msra_official_key(k)
        out[nk] = v
        if nk.endswith(".attn.attention_biases"):
            out[nk[: -len("es")] + "_idxs"] = official_bias_idxs(math.isqrt(v.shape[-1]))
    return out


LAYOUTS: tuple[OfficialLayout, ...] = (
    OfficialLayout(f"{_MIT} EfficientViT-B", ("efficientvit_mit",),
                   looks_like_official_efficientvit_mit, mit_to_ours, mit_to_official),
    OfficialLayout(f"{_MSRA} EfficientViT-M", ("efficientvit_msra",),
                   looks_like_official_efficientvit_msra, msra_to_ours, msra_to_official),
)
