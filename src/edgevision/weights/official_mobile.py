"""Official-repository layouts of RepViT (THU-MIG/RepViT) and MobileViT v1/v2 (apple/ml-cvnets).

**RepViT** (``model/repvit.py``): ``features`` is a ModuleList. ``features.0`` is the stem
Sequential (``0`` and ``2`` are ``Conv2d_BN`` = ``.c`` conv + ``.bn``, ``1`` a GELU). Then one
``RepViTBlock`` per cfg row. A stride-1 row has ``token_mixer`` = Sequential(``RepVGGDW`` (``conv``
Conv2d_BN, ``conv1`` biased dw conv, ``bn``; the first release's m1-m3: ``conv1`` a Conv2d_BN
and no ``bn``), timm ``SqueezeExcite`` (``fc1``/``fc2`` with bias) or
Identity) and ``channel_mixer`` = ``Residual(m=Sequential(Conv2d_BN, GELU, Conv2d_BN))``. A
stride-2 row has ``token_mixer`` = Sequential(dw Conv2d_BN s2, Identity, 1x1 Conv2d_BN) and the
same ``channel_mixer``. Our (timm's) ``RepViTDownsample`` = the stride-1 row *before* the
stride-2 row (its ``pre_block``) + the stride-2 row, so each stage after the first takes two rows.
Head: ``classifier.classifier`` (+ ``classifier.classifier_dist`` when distilled), each
``BN_Linear`` = ``.bn`` + ``.l``.

**MobileViT** (``cvnets/models/classification/mobilevit.py`` / ``mobilevit_v2.py``): ``conv_1``,
``layer_1`` .. ``layer_5`` (Sequentials; same indices as our ``stages.0-4``), v1 ``conv_1x1_exp``
and ``classifier.fc`` (v2: ``classifier.1``, after a GlobalPool). Every conv is a ``ConvLayer2d``:
``block.conv`` + ``block.norm`` (BatchNorm). Inverted residuals: ``block.{exp_1x1, conv_3x3,
red_1x1}``. v1 block: ``local_rep.{conv_3x3, conv_1x1}``, ``global_rep.t`` TransformerEncoders
(``pre_norm_mha.0`` LayerNorm, ``pre_norm_mha.1.{qkv_proj, out_proj}`` LinearLayers (same shapes
as nn.Linear, fused q|k|v rows), ``pre_norm_ffn.{0, 1, 4}`` norm, fc1, fc2), ``global_rep.<depth>``
the final LayerNorm, ``conv_proj``, ``fusion``. v2 block: ``local_rep.{0, 1}``,
``global_rep.t.pre_norm_attn.0`` (GroupNorm(1)), ``pre_norm_attn.1.{qkv_proj, out_proj}``
(1x1 ConvLayer2d, qkv has 1 + 2C outputs), ``pre_norm_ffn.{0, 1, 3}``, final norm, ``conv_proj``.
No tensor changes shape; only names differ.
"""
from __future__ import annotations

from torch import nn

from ..errors import WeightsError
from .keys import OfficialLayout

_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_PLAIN = {"weight": "weight", "bias": "bias"}
_PLAIN_BN = {n: n for n in _BN}


def _leaves(pairs: dict[str, str], norm: tuple[str, str] | None = None) -> dict[str, str]:
    out = dict(pairs)
    if norm:
        out.update({f"{norm[0]}.{n}": f"{norm[1]}.{n}" for n in _BN})
    return out


_CONV_BN = _leaves({"conv.weight": "c.weight"}, ("bn", "bn"))  # ConvNormAct <-> Conv2d_BN
_NORM_LINEAR = _leaves({"l.weight": "l.weight", "l.bias": "l.bias"}, ("bn", "bn"))  # BN_Linear
_CV_CONV_BN = _leaves({"conv.weight": "block.conv.weight"}, ("bn", "block.norm"))  # ConvLayer2d
_CV_CONV = {"weight": "block.conv.weight", "bias": "block.conv.bias"}  # ConvLayer2d, no norm


def _table(pairs) -> dict[str, str]:
    """(our module, official module, leaf map) triples -> {our key: official key}."""
    return {f"{ours}.{a}": f"{off}.{b}" for ours, off, leaves in pairs for a, b in leaves.items()}


def _rename(sd: dict, table: dict[str, str], what: str, hint=None) -> dict:
    out = {}
    for k, v in sd.items():
        if k not in table:
            extra = hint(k) if hint else ""
            raise WeightsError(f"unexpected key {k!r} for a {what} checkpoint{extra}")
        out[table[k]] = v
    return out


# ---------------------------------------------------------------- RepViT (THU-MIG/RepViT)
def _repvit_block(ours: str, off: str, branch_bn: bool) -> list:
    mixer = f"{off}.token_mixer.0"
    if branch_bn:  # RepVGGDW.conv1 is a Conv2d_BN, no bn after the sum
        rep = [(f"{ours}.token_mixer.conv1", f"{mixer}.conv1", _CONV_BN)]
    else:
        rep = [(f"{ours}.token_mixer.conv1", f"{mixer}.conv1", _PLAIN),
               (f"{ours}.token_mixer.bn", f"{mixer}.bn", _PLAIN_BN)]
    return rep + [(f"{ours}.token_mixer.conv", f"{mixer}.conv", _CONV_BN),
                  (f"{ours}.se.conv_reduce", f"{off}.token_mixer.1.fc1", _PLAIN),
                  (f"{ours}.se.conv_expand", f"{off}.token_mixer.1.fc2", _PLAIN),
                  (f"{ours}.channel_mixer.conv1", f"{off}.channel_mixer.m.0", _CONV_BN),
                  (f"{ours}.channel_mixer.conv2", f"{off}.channel_mixer.m.2", _CONV_BN)]


def _repvit_table(model: nn.Module) -> dict[str, str]:
    pairs = [("stem.conv1", "features.0.0", _CONV_BN), ("stem.conv2", "features.0.2", _CONV_BN)]
    row = 1  # features index of the next cfg row
    branch_bn = getattr(model.spec, "branch_bn", False)
    for i, depth in enumerate(model.spec.depths):
        if i:
            down = f"stages.{i}.downsample"
            pairs += _repvit_block(f"{down}.pre_block", f"features.{row}", branch_bn)
            pairs += [(f"{down}.spatial_downsample", f"features.{row + 1}.token_mixer.0", _CONV_BN),
                      (f"{down}.channel_downsample", f"features.{row + 1}.token_mixer.2", _CONV_BN),
                      (f"{down}.ffn.conv1", f"features.{row + 1}.channel_mixer.m.0", _CONV_BN),
                      (f"{down}.ffn.conv2", f"features.{row + 1}.channel_mixer.m.2", _CONV_BN)]
            row += 2
        for j in range(depth):
            pairs += _repvit_block(f"stages.{i}.blocks.{j}", f"features.{row}", branch_bn)
            row += 1
    if getattr(model.spec, "distilled", True):
        pairs += [("head.head", "classifier.classifier", _NORM_LINEAR),
                  ("head.head_dist", "classifier.classifier_dist", _NORM_LINEAR)]
    else:
        pairs += [("head", "classifier.classifier", _NORM_LINEAR)]
    return _table(pairs)


def looks_like_official_repvit(sd: dict) -> bool:
    return "features.0.0.c.weight" in sd and any(
        k.startswith("features.1.token_mixer.") for k in sd)


def _repvit_hint(key: str) -> str:
    if key.startswith("classifier.classifier_dist."):
        return " (a distillation head: create the model with distilled=True)"
    return ""


def repvit_to_ours(sd: dict, model: nn.Module) -> dict:
    inv = {v: k for k, v in _repvit_table(model).items()}
    return _rename(sd, inv, f"THU-MIG RepViT {getattr(model, 'model_name', '')}", _repvit_hint)


def repvit_to_official(sd: dict, model: nn.Module) -> dict:
    return _rename(sd, _repvit_table(model), "edgevision RepViT")


# ---------------------------------------------------------------- MobileViT (apple/ml-cvnets)
def _mobilevit_table(model: nn.Module) -> dict[str, str]:
    from ..blocks.mobilevit import MobileViTBlock, MobileViTV2Block
    v1 = model.spec.version == 1
    pairs = [("stem", "conv_1", _CV_CONV_BN)]
    for i, stage in enumerate(model.stages):
        for j, blk in enumerate(stage):
            ours, off = f"stages.{i}.{j}", f"layer_{i + 1}.{j}"
            if isinstance(blk, (MobileViTBlock, MobileViTV2Block)):
                pairs.append((f"{ours}.conv_kxk", f"{off}.local_rep.{'conv_3x3' if v1 else 0}",
                              _CV_CONV_BN))
                pairs.append((f"{ours}.conv_1x1", f"{off}.local_rep.{'conv_1x1' if v1 else 1}",
                              _CV_CONV))
                for t in range(len(blk.transformer)):
                    o, f = f"{ours}.transformer.{t}", f"{off}.global_rep.{t}"
                    if v1:
                        pairs += [(f"{o}.norm1", f"{f}.pre_norm_mha.0", _PLAIN),
                                  (f"{o}.attn.qkv", f"{f}.pre_norm_mha.1.qkv_proj", _PLAIN),
                                  (f"{o}.attn.proj", f"{f}.pre_norm_mha.1.out_proj", _PLAIN),
                                  (f"{o}.norm2", f"{f}.pre_norm_ffn.0", _PLAIN),
                                  (f"{o}.mlp.fc1", f"{f}.pre_norm_ffn.1", _PLAIN),
                                  (f"{o}.mlp.fc2", f"{f}.pre_norm_ffn.4", _PLAIN)]
                    else:
                        pairs += [(f"{o}.norm1", f"{f}.pre_norm_attn.0", _PLAIN),
                                  (f"{o}.attn.qkv_proj", f"{f}.pre_norm_attn.1.qkv_proj", _CV_CONV),
                                  (f"{o}.attn.out_proj", f"{f}.pre_norm_attn.1.out_proj", _CV_CONV),
                                  (f"{o}.norm2", f"{f}.pre_norm_ffn.0", _PLAIN),
                                  (f"{o}.mlp.fc1", f"{f}.pre_norm_ffn.1", _CV_CONV),
                                  (f"{o}.mlp.fc2", f"{f}.pre_norm_ffn.3", _CV_CONV)]
                pairs += [(f"{ours}.norm", f"{off}.global_rep.{len(blk.transformer)}", _PLAIN),
                          (f"{ours}.conv_proj", f"{off}.conv_proj", _CV_CONV_BN),
                          (f"{ours}.conv_fusion", f"{off}.fusion", _CV_CONV_BN)]
            else:  # inverted residual
                pairs += [(f"{ours}.conv_pw", f"{off}.block.exp_1x1", _CV_CONV_BN),
                          (f"{ours}.conv_dw", f"{off}.block.conv_3x3", _CV_CONV_BN),
                          (f"{ours}.conv_pwl", f"{off}.block.red_1x1", _CV_CONV_BN)]
    pairs += [("final_conv", "conv_1x1_exp", _CV_CONV_BN),
              ("classifier", "classifier.fc" if v1 else "classifier.1", _PLAIN)]
    return _table(pairs)


def _looks_like_cvnets(sd: dict, local_rep: str) -> bool:
    return "conv_1.block.conv.weight" in sd and any(
        k.startswith("layer_") and f".local_rep.{local_rep}." in k for k in sd)


def looks_like_official_mobilevit(sd: dict) -> bool:
    return _looks_like_cvnets(sd, "conv_3x3")


def looks_like_official_mobilevitv2(sd: dict) -> bool:
    return _looks_like_cvnets(sd, "0")


def mobilevit_to_ours(sd: dict, model: nn.Module) -> dict:
    inv = {v: k for k, v in _mobilevit_table(model).items()}
    return _rename(sd, inv, f"apple/ml-cvnets {getattr(model, 'model_name', 'MobileViT')}")


def mobilevit_to_official(sd: dict, model: nn.Module) -> dict:
    return _rename(sd, _mobilevit_table(model), "edgevision MobileViT")


LAYOUTS: tuple[OfficialLayout, ...] = (
    OfficialLayout("THU-MIG/RepViT", ("repvit",), looks_like_official_repvit,
                   repvit_to_ours, repvit_to_official),
    OfficialLayout("apple/ml-cvnets MobileViT", ("mobilevit",),
                   looks_like_official_mobilevit, mobilevit_to_ours,
                   mobilevit_to_official),
    OfficialLayout("apple/ml-cvnets MobileViTv2", ("mobilevitv2",),
                   looks_like_official_mobilevitv2, mobilevit_to_ours,
                   mobilevit_to_official),
)
