"""Graph rewrites that let XNNPACK (ExecuTorch's CPU delegate) take every op of edgevision's models.

``rewrite(ep)`` applies them to a functional ``torch.export`` program before lowering. Each computes
the same function in ops XNNPACK has (to float rounding; tests/test_target_executorch.py checks
1e-5), so nothing runs in ExecuTorch's portable kernels, which are slow and split the graph into
partitions with copies between them (docs/deploy.md):

- LayerNorm: the means become 1x1 convs with weights 1/C on the NCHW tensor (channel LayerNorm;
  its permutes to NHWC and back then cancel) or a Linear with weights 1/C (last axis of a token or
  pooled tensor); GroupNorm with one group likewise; ConvNeXt V2's 2-norm over (H, W) from a mean;
- means and sums XNNPACK lacks (over (H, W) without keepdim, over the channels, over the last
  axis) as keepdim means, 1x1 convs or Linears;
- attention: scaled_dot_product_attention as bmm + softmax (a boolean mask becomes an additive
  constant), batched matmuls as one bmm, a broadcast (MQA's shared key) as a multiply by ones,
  baddbmm as bmm + add;
- splits and unbinds as slices, a non-trailing unsqueeze as a reshape, Hardsigmoid as
  ``clamp(x / 6 + 1/2, 0, 1)`` (PyTorch's form leaves scalar copies outside);
- softmax over the last axis of a 4-D tensor as 2-D rows: XNNPACK keeps conv outputs
  channels-last inside and would softmax over the channels (a wrong result, not a slow one).

For LiteRT, which converts the module itself, ``one_group_norms_decomposed`` swaps one-group
GroupNorms for the same function in means (its converter leaves BROADCAST_TOs outside XNNPACK).

Then permutes that undo each other and aliases are dropped, and constants are folded: weights
computed from parameters (ConvNeXt's 1x1-conv MLP reshapes its Linear weights) become constants,
which XNNPACK requires of a conv's weight; quantize/dequantize of INT8 weights stay.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F


def rewrite(ep):
    """The rewrites of the module docstring applied to ``ep`` (an ExportedProgram); returns the new
    program and what was rewritten (op name -> count)."""
    from executorch.exir.passes.constant_prop_pass import constant_prop_pass
    table = _rewrites()
    before = _rewritable(ep, table)
    ep = ep.run_decompositions(table)  # a rewrite that does not apply returns NotImplemented
    after = _rewritable(ep, table)
    counts = {op: n - after.get(op, 0) for op, n in before.items() if n > after.get(op, 0)}
    _drop_no_ops(ep.graph_module)
    # quantize/dequantize of constant weights stay: folding them would store float weights
    q = torch.ops.quantized_decomposed
    keep = {q.quantize_per_tensor.default, q.quantize_per_tensor.tensor, q.dequantize_per_tensor.default,
            q.dequantize_per_tensor.tensor, q.quantize_per_channel.default, q.dequantize_per_channel.default}
    with _memory_format_is_constant():
        return constant_prop_pass(ep, custom_skip_targets=keep), counts


@contextmanager
def _memory_format_is_constant():
    """Let the constant folder fold copies of constants (a mask reshaped from a permuted one): it
    takes no node with a memory-format argument, which it does not count among constants."""
    from executorch.exir.passes import constant_prop_pass as folder
    saved = getattr(folder, "_PRIMITIVE_TYPES", None)
    if saved is not None:
        folder._PRIMITIVE_TYPES = (*saved, torch.memory_format)
    try:
        yield
    finally:
        if saved is not None:
            folder._PRIMITIVE_TYPES = saved


def _rewritable(ep, table) -> dict[str, int]:
    """Nodes of ``ep`` by op name whose op ``table`` rewrites (not those of constants only, which
    fold into a constant, nor those ``_left_as_is``)."""
    sig = ep.graph_signature
    constants = {**sig.inputs_to_parameters, **sig.inputs_to_buffers, **sig.inputs_to_lifted_tensor_constants}
    counts: dict[str, int] = {}
    for node in ep.graph.nodes:
        folded = all(a.op == "placeholder" and a.name in constants for a in node.all_input_nodes)
        if node.op == "call_function" and node.target in table and not folded and not _left_as_is(node):
            name = node.target.__name__.split(".")[0]
            counts[name] = counts.get(name, 0) + 1
    return counts


def _left_as_is(node) -> bool:
    """A node a rewrite leaves as it is, or emits itself: a mean over (H, W) of a 4-D tensor with
    keepdim (XNNPACK's own form), a softmax of a tensor that is not 4-D."""
    x = node.args[0].meta["val"]
    if node.target is torch.ops.aten.softmax.int:
        return x.dim() != 4
    if node.target is not torch.ops.aten.mean.dim:
        return False
    keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
    return x.dim() == 4 and keepdim and _dims(x, node.args[1]) == [2, 3]


def _rewrites() -> dict:
    """ATen op -> the same function in ops XNNPACK takes."""
    aten = torch.ops.aten
    return {aten.layer_norm.default: _layer_norm, aten.group_norm.default: _group_norm,
            aten.mean.dim: _mean, aten.sum.dim_IntList: _sum, aten.linalg_vector_norm.default: _norm,
            aten.hardsigmoid.default: _hardsigmoid, aten.matmul.default: _matmul,
            aten.baddbmm.default: _baddbmm, aten.split.Tensor: _split,
            aten.split_with_sizes.default: _split_with_sizes, aten.unbind.int: _unbind,
            aten.expand.default: _expand, aten.softmax.int: _softmax, aten.unsqueeze.default: _unsqueeze,
            aten.scaled_dot_product_attention.default: _attention}


def _dims(x, dim) -> list[int] | None:
    return None if dim is None else sorted(d % x.dim() for d in ([dim] if isinstance(dim, int) else dim))


def _channel_mean(x):
    """Mean over the channels of NCHW ``x`` as a 1x1 conv with weights 1/C: (N, 1, H, W)."""
    c = x.shape[1]
    return F.conv2d(x, torch.full((1, c, 1, 1), 1.0 / c, dtype=x.dtype))


def _last_mean(x, scale: float | None = None):
    """Mean (or, with ``scale`` 1, sum) over the last axis as a Linear: (..., 1)."""
    n = x.shape[-1]
    return F.linear(x, torch.full((1, n), 1.0 / n if scale is None else scale, dtype=x.dtype))


def _normalized(x, mean, weight, bias, eps: float, shape):
    d = x - mean(x)
    y = d * torch.rsqrt(mean(d * d) + eps)
    y = y if weight is None else y * weight.reshape(shape)
    return y if bias is None else y + bias.reshape(shape)


def _layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5, cudnn_enable=True):
    """LayerNorm over the last axis. A 4-D input (channel LayerNorm on an NHWC view) is normalized
    in NCHW with 1x1 convs; the permutes this adds cancel against those around the original."""
    if len(normalized_shape) != 1:
        return NotImplemented
    if x.dim() != 4:
        return _normalized(x, _last_mean, weight, bias, eps, (-1,))
    y = _normalized(x.permute(0, 3, 1, 2), _channel_mean, weight, bias, eps, (1, -1, 1, 1))
    return y.permute(0, 2, 3, 1)


def _group_norm(x, num_groups, weight=None, bias=None, eps=1e-5, cudnn_enabled=True):
    """GroupNorm with one group (LayerNorm over C, H, W) of an NCHW tensor."""
    if num_groups != 1 or x.dim() != 4:
        return NotImplemented
    return _normalized(x, lambda t: _channel_mean(t.mean((2, 3), keepdim=True)), weight, bias, eps,
                       (1, -1, 1, 1))


def _mean(x, dim, keepdim=False, dtype=None):
    """Means XNNPACK lacks: over (H, W) without keepdim, over the channels, over the last axis."""
    dims = _dims(x, dim)
    if dtype is not None or dims is None or (x.dim() == 4 and dims == [2, 3] and keepdim):
        return NotImplemented
    if x.dim() == 4 and dims == [2, 3]:
        y = x.mean((2, 3), keepdim=True)
    elif x.dim() == 4 and dims == [1]:
        y = _channel_mean(x)
    elif dims == [x.dim() - 1]:
        y = _last_mean(x)
    else:
        return NotImplemented
    return y if keepdim else y.reshape([n for i, n in enumerate(x.shape) if i not in dims])


def _sum(x, dim, keepdim=False, dtype=None):
    """Sums as means times the count (over (H, W)) or a Linear of ones (over the last axis)."""
    dims = _dims(x, dim)
    if dtype is not None or dims is None:
        return NotImplemented
    if x.dim() == 4 and dims == [2, 3]:
        y = x.mean((2, 3), keepdim=True) * float(x.shape[2] * x.shape[3])
    elif dims == [x.dim() - 1]:
        y = _last_mean(x, 1.0)
    else:
        return NotImplemented
    return y if keepdim else y.reshape([n for i, n in enumerate(x.shape) if i not in dims])


def _norm(x, ord=2, dim=None, keepdim=False, dtype=None):
    """The 2-norm over (H, W) (ConvNeXt V2's GRN) from a spatial mean of squares."""
    if ord != 2 or dtype is not None or x.dim() != 4 or _dims(x, dim) != [2, 3]:
        return NotImplemented
    y = torch.sqrt((x * x).mean((2, 3), keepdim=True) * float(x.shape[2] * x.shape[3]))
    return y if keepdim else y.flatten(1)


def _hardsigmoid(x):
    return (x * (1.0 / 6.0) + 0.5).clamp(0.0, 1.0)


def _matmul(a, b):
    """A batched matmul with equal batch dimensions as one bmm (no broadcasting expand)."""
    if a.dim() < 3 or a.dim() != b.dim() or a.shape[:-2] != b.shape[:-2]:
        return NotImplemented
    if a.dim() == 3:
        return torch.bmm(a, b)
    out = torch.bmm(a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:]))
    return out.reshape(*a.shape[:-2], *out.shape[-2:])


def _expand(x, size, implicit=False):
    """A broadcast as a multiply by ones that are 1 along every axis that is not expanded."""
    if not x.is_floating_point():
        return NotImplemented
    lead = len(size) - x.dim()
    shape = [x.shape[i - lead] if s == -1 else s for i, s in enumerate(size)]
    ones = [s if i < lead or x.shape[i - lead] != s else 1 for i, s in enumerate(shape)]
    return x * torch.ones(ones, dtype=x.dtype)


def _baddbmm(x, batch1, batch2, beta=1, alpha=1):
    if beta != 1 or alpha != 1:
        return NotImplemented
    return torch.bmm(batch1, batch2) + x


def _split(x, split_size, dim=0):
    n = x.shape[dim]
    return _split_with_sizes(x, [min(split_size, n - i) for i in range(0, n, split_size)], dim)


def _split_with_sizes(x, split_sizes, dim=0):
    """A split as slices (XNNPACK has slices, not splits)."""
    starts = np.cumsum([0] + list(split_sizes[:-1])).tolist()
    return [x.narrow(dim, s, n) for s, n in zip(starts, split_sizes)]


def _unsqueeze(x, dim):
    """An unsqueeze that is not trailing (the only one XNNPACK takes) as a reshape."""
    dim = dim % (x.dim() + 1)
    return NotImplemented if dim == x.dim() else x.reshape(*x.shape[:dim], 1, *x.shape[dim:])


def _softmax(x, dim, dtype=None):
    """Softmax over the last axis of a 4-D tensor, taken over its rows as a 2-D tensor: XNNPACK
    computes a 4-D one over the wrong axis when its input comes from a conv (it keeps such
    tensors channels-last inside and softmaxes over the channels)."""
    if x.dim() != 4 or dim % 4 != 3 or dtype is not None:
        return NotImplemented
    return torch.softmax(x.reshape(-1, x.shape[-1]), -1).reshape(x.shape)


def _unbind(x, dim=0):
    """Unbind as slices and reshapes (XNNPACK has no select/squeeze)."""
    shape = [n for i, n in enumerate(x.shape) if i != dim % x.dim()]
    return [x.narrow(dim, i, 1).reshape(shape) for i in range(x.shape[dim])]


def _attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False):
    """softmax(q k^T * scale + mask) v with bmm and softmax; a boolean mask becomes an additive
    constant. The result has the memory layout PyTorch's kernel gives (that of ``q``), on which
    the model's own reshapes were traced."""
    if dropout_p or is_causal or enable_gqa or q.shape[:-2] != k.shape[:-2]:
        return NotImplemented
    s = scale if scale is not None else q.shape[-1] ** -0.5
    a = _matmul(q, k.transpose(-2, -1)) * s
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            attn_mask = torch.zeros(attn_mask.shape, dtype=q.dtype).masked_fill(~attn_mask, float("-inf"))
        a = a + attn_mask
    out = _matmul(torch.softmax(a, -1), v)
    order = sorted(range(q.dim()), key=lambda i: -q.stride(i))
    if order == list(range(q.dim())):
        return out
    return out.permute(order).contiguous().permute([order.index(i) for i in range(q.dim())])


def _permutation(node) -> list[int] | None:
    """The dimension order a permute/transpose node applies (None for other nodes)."""
    aten = torch.ops.aten
    if node.target is aten.permute.default:
        return list(node.args[1])
    if node.target is aten.transpose.int:
        rank = len(node.meta["val"].shape)
        order = list(range(rank))
        i, j = node.args[1] % rank, node.args[2] % rank
        order[i], order[j] = order[j], order[i]
        return order
    return None


def _drop_no_ops(graph_module) -> None:
    """Drop what computes nothing: pairs of permutes/transposes that undo each other (left by the
    rewrites), aliases (a slice that takes a whole tensor), which XNNPACK would leave outside."""
    for node in graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        if node.target is torch.ops.aten.alias.default:
            node.replace_all_uses_with(node.args[0])
            continue
        second, src = _permutation(node), node.args[0] if node.args else None
        first = None
        if second is not None and getattr(src, "op", None) == "call_function":
            first = _permutation(src)
        if first is not None and [first[i] for i in second] == list(range(len(second))):
            node.replace_all_uses_with(src.args[0])
    graph_module.graph.eliminate_dead_code()
    graph_module.recompile()


class _OneGroupNorm(torch.nn.Module):
    """GroupNorm with one group as per-sample means over the flattened sample (the same function
    to float rounding). LiteRT's converter lowers ``nn.GroupNorm`` with a BROADCAST_TO of its
    statistics, which XNNPACK does not take (MobileViT V2: 2 per norm, 22 partitions)."""

    def __init__(self, norm: torch.nn.GroupNorm):
        super().__init__()
        self.eps, self.weight, self.bias = norm.eps, norm.weight, norm.bias

    def forward(self, x):
        n = x.shape[0]
        stat = (n,) + (1,) * (x.dim() - 1)
        d = x - x.reshape(n, -1).mean(-1).reshape(stat)
        y = d * torch.rsqrt((d * d).reshape(n, -1).mean(-1).reshape(stat) + self.eps)
        channel = (1, -1) + (1,) * (x.dim() - 2)
        return y * self.weight.view(channel) + self.bias.view(channel)


def one_group_norms_decomposed(module: torch.nn.Module) -> torch.nn.Module:
    """``module``, or a copy whose affine one-group GroupNorms are :class:`_OneGroupNorm`."""
    import copy
    names = [n for n, m in module.named_modules()
             if isinstance(m, torch.nn.GroupNorm) and m.num_groups == 1 and m.affine]
    if not names:
        return module
    module = copy.deepcopy(module)
    for name in names:
        parent, _, attr = name.rpartition(".")
        owner = module.get_submodule(parent)
        setattr(owner, attr, _OneGroupNorm(getattr(owner, attr)))
    return module
