"""Structural key matching for converters: when a foreign layout holds the same blocks in the
same order (only names differ), pair them block by block and, inside a block, tensor by tensor
in registration order — every pair must agree in kind (weight/bias/running_mean/...) and shape,
else the conversion fails with the first disagreement."""
from __future__ import annotations

import re
from collections import OrderedDict

import torch

from ..errors import WeightsError

_KINDS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked", "layer_scale", "gamma")


def _kind(key: str) -> str:
    last = key.rsplit(".", 1)[-1]
    return last if last in _KINDS else "param"


def group_by(keys, pattern: str) -> "OrderedDict[str, list[str]]":
    """Group keys by the prefix matched by ``pattern`` (a regex with one group, the block id);
    keys that do not match are left out. Order of first appearance is kept."""
    rx = re.compile(pattern)
    groups: OrderedDict[str, list[str]] = OrderedDict()
    for k in keys:
        m = rx.match(k)
        if m:
            groups.setdefault(m.group(1), []).append(k)
    return groups


def pair_tensors(src_keys: list[str], dst_keys: list[str], src: dict, dst_shapes: dict,
                 where: str) -> dict[str, torch.Tensor]:
    """Pair two equally ordered key lists; reshape only between (O, I) and (O, I, 1, 1)."""
    if len(src_keys) != len(dst_keys):
        raise WeightsError(f"{where}: {len(src_keys)} tensors in the file but {len(dst_keys)} in the model "
                           f"(file: {src_keys[:3]}..., model: {dst_keys[:3]}...)")
    out = {}
    for a, b in zip(src_keys, dst_keys):
        t = src[a]
        want = tuple(dst_shapes[b])
        if _kind(a) != _kind(b) and not (_kind(a) == "param" or _kind(b) == "param"):
            raise WeightsError(f"{where}: {a} ({_kind(a)}) cannot become {b} ({_kind(b)})")
        if tuple(t.shape) != want:
            if t.numel() == int(torch.tensor(want).prod()) and t.ndim in (2, 4) and len(want) in (2, 4):
                t = t.reshape(want)
            else:
                raise WeightsError(f"{where}: {a} has shape {tuple(t.shape)} but {b} needs {want}")
        out[b] = t
    return out


def match_blocks(src: dict, src_pattern: str, dst_shapes: dict, dst_pattern: str, where: str) -> dict:
    """Pair the blocks (groups) of ``src`` and of the model, in order, then their tensors."""
    sg, dg = group_by(src, src_pattern), group_by(dst_shapes, dst_pattern)
    if len(sg) != len(dg):
        raise WeightsError(f"{where}: the file has {len(sg)} blocks but the model {len(dg)}; these weights "
                           f"are for another depth/variant")
    out = {}
    for (sid, sk), (did, dk) in zip(sg.items(), dg.items()):
        out.update(pair_tensors(sk, dk, src, dst_shapes, f"{where} block {sid} -> {did}"))
    return out
