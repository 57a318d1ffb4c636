"""Reductions over a list of dims: sum, mean, max, min, prod."""
from __future__ import annotations

import numpy as np
import torch

from forge_fe.op.registry import TensorType, defop, norm_axis, relax_tensor_args
from forge_fe.ttir import emitter as E


def _reduce_shape(ins, a):
    shape = ins[0].shape
    dims = a["dims"]
    out = tuple((1 if i in dims else d) for i, d in enumerate(shape)) if a["keep_dim"] else \
        tuple(d for i, d in enumerate(shape) if i not in dims)
    return TensorType(out, ins[0].dtype)


def _reduce_from_relax(call):
    rank = call.args[0].ty.ndim
    axis = call.attrs.axis
    dims = list(range(rank)) if axis is None else sorted(norm_axis(int(x), rank) for x in axis)
    return relax_tensor_args(call), {"dims": dims, "keep_dim": bool(call.attrs.keepdims)}


def _spread(d, g):
    """g (the reduction's output gradient) broadcast back over the reduced dims of x."""
    from forge_fe.op.tensor import broadcast, reshape
    x, a = d.x[0], d.node.attrs
    kept = [1 if i in a["dims"] else s for i, s in enumerate(x.shape)]
    if tuple(g.shape) != tuple(kept):
        g = d.op(reshape, g, shape=kept)
    return d.op(broadcast, g, shape=list(x.shape)) if tuple(kept) != tuple(x.shape) else g


def _sum_grad(d):
    return [_spread(d, d.grad)]


def _mean_grad(d):
    from forge_fe.op.eltwise import multiply
    count = int(np.prod([d.x[0].shape[i] for i in d.node.attrs["dims"]]))
    return [_spread(d, d.op(multiply, d.grad, d.const(1.0 / max(count, 1))))]


def _extremum_grad(d):
    """max/min: g goes to the elements equal to the result, split evenly among ties (as torch's amax)."""
    from forge_fe.op.eltwise import cast, divide, equal, multiply
    x = d.x[0]
    hit = d.op(cast, d.op(equal, x, _spread(d, d.y)), dtype=x.dtype)
    ties = _spread(d, d.op(sum_, hit, dims=d.node.attrs["dims"], keep_dim=True))
    return [d.op(multiply, hit, d.op(divide, _spread(d, d.grad), ties))]


def reduction(name, fn, relax, backward=None):
    """y = fn over `dims` (all listed dims at once), keeping them as size 1 if keep_dim."""
    def golden(ins, a):
        x = ins[0]
        if not a["dims"]:
            return x.clone()
        return fn(x, a["dims"], a["keep_dim"])

    def lower(e, ins, a, out):
        return e.op(f"ttir.{name}", ins, out.shape, out.elem,
                    {"dim_arg": E.I32List(a["dims"]), "keep_dim": E.Bool(a["keep_dim"])}, data_format=out.data_format)
    return defop(name, shape=_reduce_shape, golden=golden, lower=lower, relax=(relax,), from_relax=_reduce_from_relax,
                 backward=backward)


def _multi(fn):
    """Apply a one-dim torch reduction over several dims (highest first, so indices stay valid)."""
    def run(x, dims, keep):
        for d in sorted(dims, reverse=True):
            x = fn(x, d, keep)
        return x
    return run


sum_ = reduction("sum", lambda x, d, k: torch.sum(x, d, keepdim=k), "relax.sum", backward=_sum_grad)
mean = reduction("mean", lambda x, d, k: torch.mean(x, d, keepdim=k), "relax.mean", backward=_mean_grad)
max_ = reduction("max", _multi(lambda x, d, k: torch.amax(x, d, keepdim=k)), "relax.max", backward=_extremum_grad)
min_ = reduction("min", _multi(lambda x, d, k: torch.amin(x, d, keepdim=k)), "relax.min", backward=_extremum_grad)
prod = reduction("prod", _multi(lambda x, d, k: torch.prod(x, d, keepdim=k)), "relax.prod")
