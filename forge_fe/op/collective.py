"""Multi-chip ops: the program boundary (mesh_shard) and the collectives between chips.

The sharding pass (forge_fe/passes/mesh/propagate.py) inserts them into the per-chip (local) graph of
a program compiled for a mesh; they lower to tt-mlir's TTIR ops of the same names
(include/ttmlir/Dialect/TTIR/IR/TTIROps.td: MeshShardOp, AllReduceOp, AllGatherOp,
ReduceScatterOp, MeshPartitionOp; enum spellings from TTCore/IR/TTCoreOpsEnums.td).

Every attrs dict carries `mesh_shape` [rows, cols] for the shape rule; it is not a TTIR
attribute (the mesh is the module's `ttcore.meshes` attribute). `cluster_axis` is the mesh
axis (0 = "x", the rows; 1 = "y").

Golden rules work on *mesh-stacked* values: a tensor held by every chip is one torch tensor of
shape [rows, cols, *local shape] (chip (r, c)'s piece at [r, c]). mesh_shard full_to_shard
takes a global tensor to that form and shard_to_full back. The emulated mesh runtime
(forge_fe/device/mesh_runtime.py) implements the same ops per chip, with the device's reduction
order and rounding; tests/test_mesh.py checks the two agree.

    all_reduce(x)[r, c]        = sum over the chips along cluster_axis of x
    all_gather(x)[r, c]        = concat along all_gather_dim of x's pieces along cluster_axis
    reduce_scatter(x)[r, c]    = piece (index along cluster_axis) of all_reduce(x), split on scatter_dim
    mesh_partition(x)[r, c]    = piece (index along cluster_axis) of x, split on dim (no communication)
"""
from __future__ import annotations

import torch

from forge_fe.op.registry import TensorType, defop
from forge_fe.ttir import emitter as E

SHARD_TYPE = E.ttcore_enum("shard_type")
SHARD_DIRECTION = E.ttcore_enum("shard_direction")
REDUCE_TYPE = E.ttcore_enum("reduce_type")


def _with_dim(shape, dim, size):
    shape = list(shape)
    shape[dim] = size
    return tuple(shape)


# ---- mesh_shard: global <-> per-chip at the program boundary -------------------------

def _mesh_shard_shape(ins, a):
    x = ins[0]
    if a["shard_type"] == "replicate":
        return x
    if a["shard_direction"] == "full_to_shard":
        return TensorType(tuple(s // p for s, p in zip(x.shape, a["shard_shape"])), x.dtype)
    return TensorType(tuple(s * p for s, p in zip(x.shape, a["shard_shape"])), x.dtype)


def _mesh_shard_golden(ins, a):
    rows, cols = a["mesh_shape"]
    x = ins[0]
    dims = a["shard_dims"] if a["shard_type"] == "devices" else [-1, -1]
    if a["shard_direction"] == "full_to_shard":
        pieces = [[x] * cols for _ in range(rows)]
        for axis, dim in enumerate(dims):
            if dim < 0:
                continue
            for r in range(rows):
                for c in range(cols):
                    pieces[r][c] = torch.chunk(pieces[r][c], (rows, cols)[axis], dim)[(r, c)[axis]]
        return torch.stack([torch.stack(row) for row in pieces])
    # shard_to_full: concatenate along the split dims, take chip 0's copy along replicated axes
    row_dim, col_dim = dims
    rows_full = [torch.cat(list(x[r]), col_dim) if col_dim >= 0 else x[r, 0] for r in range(rows)]
    return torch.cat(rows_full, row_dim) if row_dim >= 0 else rows_full[0]


def _mesh_shard_lower(e, ins, a, out):
    return e.op("ttir.mesh_shard", ins, out.shape, out.elem, {
        "shard_dims": E.I64Array(a["shard_dims"]),
        "shard_direction": SHARD_DIRECTION(a["shard_direction"]),
        "shard_shape": E.I64Array(a["shard_shape"]),
        "shard_type": SHARD_TYPE(a["shard_type"])}, data_format=out.data_format)


mesh_shard = defop("mesh_shard", shape=_mesh_shard_shape, golden=_mesh_shard_golden, lower=_mesh_shard_lower,
                   doc="full_to_shard: every chip takes its piece of a global tensor (shard_shape pieces per dim, "
                       "shard_dims[axis] = the dim mesh axis `axis` splits, -1 none); shard_to_full: the inverse")


# ---- collectives ------------------------------------------------------------------------

def _axis_sum(x, axis):
    """Sum a mesh-stacked value over mesh axis `axis`, every chip along it receiving the sum."""
    return x.sum(dim=axis, keepdim=True).expand_as(x)


def _all_gather_golden(ins, a):
    x, axis, dim = ins[0], a["cluster_axis"], a["all_gather_dim"]
    full = torch.cat(list(x.unbind(axis)), dim + 1)          # one mesh dim left: local dim d is d + 1
    return full.unsqueeze(axis).expand(*(x.shape[:2]), *full.shape[1:]).contiguous()


def _pieces(x, axis, dim):
    """Chip (r, c) keeps piece (r, c)[axis] of its value along local dim `dim`."""
    n = x.shape[axis]
    rows = []
    for r in range(x.shape[0]):
        rows.append(torch.stack([torch.chunk(x[r, c], n, dim)[(r, c)[axis]] for c in range(x.shape[1])]))
    return torch.stack(rows)


all_reduce = defop(
    "all_reduce", shape=lambda ins, a: ins[0], golden=lambda ins, a: _axis_sum(ins[0], a["cluster_axis"]),
    lower=lambda e, ins, a, out: e.op("ttir.all_reduce", ins, out.shape, out.elem, {
        "cluster_axis": E.UI32(a["cluster_axis"]), "reduce_type": REDUCE_TYPE("sum")}, data_format=out.data_format),
    doc="y = sum over the chips along cluster_axis of x (each chip gets the sum)")

all_gather = defop(
    "all_gather", shape=lambda ins, a: TensorType(_with_dim(ins[0].shape, a["all_gather_dim"], ins[0].shape[
        a["all_gather_dim"]] * a["mesh_shape"][a["cluster_axis"]]), ins[0].dtype),
    golden=_all_gather_golden,
    lower=lambda e, ins, a, out: e.op("ttir.all_gather", ins, out.shape, out.elem, {
        "all_gather_dim": E.SI32(a["all_gather_dim"]), "cluster_axis": E.UI32(a["cluster_axis"])},
        data_format=out.data_format),
    doc="y = concat along all_gather_dim of the pieces held by the chips along cluster_axis")

reduce_scatter = defop(
    "reduce_scatter", shape=lambda ins, a: TensorType(_with_dim(ins[0].shape, a["scatter_dim"], ins[0].shape[
        a["scatter_dim"]] // a["mesh_shape"][a["cluster_axis"]]), ins[0].dtype),
    golden=lambda ins, a: _pieces(_axis_sum(ins[0], a["cluster_axis"]), a["cluster_axis"], a["scatter_dim"]),
    lower=lambda e, ins, a, out: e.op("ttir.reduce_scatter", ins, out.shape, out.elem, {
        "cluster_axis": E.UI32(a["cluster_axis"]), "reduce_type": REDUCE_TYPE("sum"),
        "scatter_dim": E.SI32(a["scatter_dim"])}, data_format=out.data_format),
    doc="y = this chip's piece (along scatter_dim) of the sum over the chips along cluster_axis")

mesh_partition = defop(
    "mesh_partition", shape=lambda ins, a: TensorType(_with_dim(ins[0].shape, a["dim"], ins[0].shape[a["dim"]]
                                                                // a["mesh_shape"][a["cluster_axis"]]), ins[0].dtype),
    golden=lambda ins, a: _pieces(ins[0], a["cluster_axis"], a["dim"]),
    lower=lambda e, ins, a, out: e.op("ttir.mesh_partition", ins, out.shape, out.elem, {
        "cluster_axis": E.UI32(a["cluster_axis"]), "dim": E.SI32(a["dim"])}, data_format=out.data_format),
    doc="y = this chip's piece along dim of a value every chip along cluster_axis holds whole (a local slice)")

MESH_OPS = {mesh_shard, all_reduce, all_gather, reduce_scatter, mesh_partition}
