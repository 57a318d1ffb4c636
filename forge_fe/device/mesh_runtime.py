"""The emulated mesh: one instance of a device program per chip (SPMD), in lockstep.

Every chip has its own tensor slots; an ordinary op runs on each chip's operands with the
single-chip kernels and numerics (forge_fe.device.program.DeviceProgram); the ops below act on
all chips' values at once. Chip c is mesh coordinate (c // cols, c % cols); the chips "along
cluster_axis a" of chip c are those that differ from it only in coordinate a, ordered by it.

Reduction order and rounding (the device's): a sum over n chips is tt-metal's ring reduce-scatter
(tech_reports/EthernetMultichip/CclDeveloperGuide.md, "(Ring) Reduce Scatter"): the tensor is cut
into n chunks; chunk k's partial sum starts on chip k-1 with its own piece, travels k-2, ..., k+1,
and ends on chip k (indices mod n, along the axis), each chip adding its piece to the partial it
received; the receiving chip's add runs in fp32 (fp32_dest_acc_en) and its result is stored in the
tensor's data format (bf16, bfp8 ...) before it is sent on, so a bf16 sum is rounded after every
hop. all_reduce is that reduce-scatter over the last dim followed by an all-gather, the standard
ring all-reduce (we assume tt-metal's is this one; its order only shows in the low bits).
"""
from __future__ import annotations

import torch

from forge_fe.device import numerics
from forge_fe.errors import RuntimeFailure
from forge_fe.device.program import DeviceProgram


def _groups(mesh_shape, axis):
    """Chip indices grouped along `axis`: [[chips with the other coordinate fixed, by coordinate]]."""
    rows, cols = mesh_shape
    if axis == 1:
        return [[r * cols + c for c in range(cols)] for r in range(rows)]
    return [[r * cols + c for r in range(rows)] for c in range(cols)]


def _round(x, fmt):
    return numerics.quantize(x, fmt) if fmt is not None and x.is_floating_point() else x


def ring_sum(pieces: list, owner: int, fmt) -> torch.Tensor:
    """Sum of pieces[0..n) as the ring computes it for chunk `owner`: owner-1 first, owner last,
    rounded to `fmt` after every add."""
    n = len(pieces)
    order = [(owner - 1 - s) % n for s in range(n)]
    acc = pieces[order[0]]
    for k in order[1:]:
        acc = _round(acc + pieces[k], fmt)
    return acc


def _reduce_scatter_group(xs: list, dim: int, fmt) -> list:
    n = len(xs)
    chunks = [torch.tensor_split(x, n, dim) for x in xs]
    return [ring_sum([chunks[k][j] for k in range(n)], j, fmt) for j in range(n)]


def mesh_shard(values, attrs, mesh_shape, fmt):
    rows, cols = mesh_shape
    replicate = attrs["shard_type"] == "replicate"
    dims = [-1, -1] if replicate else attrs["shard_dims"]
    if attrs["shard_direction"] == "full_to_shard":
        out = []
        for chip, (x,) in enumerate(values):
            coord = divmod(chip, cols)
            for axis, dim in enumerate(dims):
                if dim >= 0:
                    x = torch.tensor_split(x, mesh_shape[axis], dim)[coord[axis]]
            out.append(x)
        return out
    row_dim, col_dim = dims
    full_rows = [torch.cat([values[r * cols + c][0] for c in range(cols)], col_dim) if col_dim >= 0
                 else values[r * cols][0] for r in range(rows)]
    full = torch.cat(full_rows, row_dim) if row_dim >= 0 else full_rows[0]
    return [full] * len(values)


def all_gather(values, attrs, mesh_shape, fmt):
    out = [None] * len(values)
    for group in _groups(mesh_shape, attrs["cluster_axis"]):
        full = torch.cat([values[c][0] for c in group], attrs["all_gather_dim"])
        for c in group:
            out[c] = full
    return out


def reduce_scatter(values, attrs, mesh_shape, fmt):
    out = [None] * len(values)
    for group in _groups(mesh_shape, attrs["cluster_axis"]):
        for c, y in zip(group, _reduce_scatter_group([values[c][0] for c in group], attrs["scatter_dim"], fmt)):
            out[c] = y
    return out


def all_reduce(values, attrs, mesh_shape, fmt):
    out = [None] * len(values)
    for group in _groups(mesh_shape, attrs["cluster_axis"]):
        xs = [values[c][0] for c in group]
        dim = xs[0].dim() - 1 if xs[0].dim() else 0
        xs = [x.reshape(1) if x.dim() == 0 else x for x in xs]
        full = torch.cat(_reduce_scatter_group(xs, dim, fmt), dim).reshape(values[group[0]][0].shape)
        for c in group:
            out[c] = full
    return out


def mesh_partition(values, attrs, mesh_shape, fmt):
    axis, n = attrs["cluster_axis"], mesh_shape[attrs["cluster_axis"]]
    cols = mesh_shape[1]
    return [torch.tensor_split(x, n, attrs["dim"])[divmod(chip, cols)[axis]] for chip, (x,) in enumerate(values)]


MESH_KERNELS = {"ttir.mesh_shard": mesh_shard, "ttir.all_gather": all_gather, "ttir.reduce_scatter": reduce_scatter,
                "ttir.all_reduce": all_reduce, "ttir.mesh_partition": mesh_partition}


class MeshProgram(DeviceProgram):
    """A device program run SPMD on every chip of a mesh; inputs and outputs are global tensors."""
    mesh_kernels = MESH_KERNELS

    def __init__(self, prog, compute, mesh_shape, shared=None):
        self.mesh_shape = tuple(int(d) for d in mesh_shape)
        # mesh_shard pieces are views of the global tensor: position of the program input each views
        self._piece_of_input = {op.outputs[0]: prog.inputs.index(op.inputs[0]) for op in prog.ops
                                if op.name == "ttir.mesh_shard" and op.inputs[0] in prog.inputs}
        super().__init__(prog, compute, shared)

    def _in_place(self, op, fn, free):
        """A cache write may update its operand in place only if that is a piece of a donated input
        (then the global tensor the caller donated is updated); any other piece is copied first,
        since writing a view would change the caller's tensor."""
        t = op.inputs[0]
        pos = self._piece_of_input.get(t)
        if pos is None:
            return super()._in_place(op, fn, free)
        return lambda ins, a: fn(ins if (pos in self.donated and t in free) else [ins[0].clone()] + ins[1:], a)

    def run(self, inputs):
        base = self._bind(inputs)
        chips = [list(base) for _ in range(self.mesh_shape[0] * self.mesh_shape[1])]
        for step in self.steps:
            fn, ins, out, attrs, dtype, fmt, free, op = step
            if op.name in MESH_KERNELS:
                try:
                    ys = fn([[c[i] for i in ins] for c in chips], attrs, self.mesh_shape, fmt)
                except Exception as exc:
                    raise RuntimeFailure(f"mesh op {op.name} at {op.loc or '?'} in program '{self.prog.name}' "
                                         f"failed: {exc}") from exc
                if op.name == "ttir.mesh_shard" and attrs["shard_direction"] == "full_to_shard":
                    ys = [_round(y, fmt) for y in ys]      # each chip stores its piece in the tensor's format
                for c, y in zip(chips, ys):
                    c[out] = y if y.dtype == dtype else y.to(dtype)
            else:
                for c in chips:
                    self._exec(step, c)
            for t in free:
                for c in chips:
                    c[t] = None
        return [chips[0][i] for i in self.prog.outputs]


def check_runtime_mesh(binary, mesh):
    """Refuse a binary compiled for another mesh than the runtime's (`mesh`: name, shape or None)."""
    from forge_fe.systems import resolve_mesh
    compiled = binary.mesh or {}
    if mesh is None:
        return
    have = mesh if hasattr(mesh, "shape") and hasattr(mesh, "system") else \
        resolve_mesh(mesh, None, compiled.get("arch", binary.system.arch))
    want = (compiled.get("system"), tuple(compiled.get("shape", ())))
    if not compiled:
        if have.size != 1:
            raise RuntimeFailure(f"model '{binary.model_name}' was compiled for one chip; this runtime is {have.name}",
                                 f"recompile with CompilerConfig(mesh='{have.system.name}', mesh_shape={have.shape}), "
                                 "or load it without mesh=")
        return
    if want != (have.system.name, tuple(have.shape)):
        shape = "x".join(map(str, want[1]))
        raise RuntimeFailure(f"model '{binary.model_name}' was compiled for mesh {want[0]} ({shape}); "
                             f"this runtime is {have.name}",
                             f"recompile with CompilerConfig(mesh='{have.system.name}', mesh_shape={have.shape}), "
                             f"or run it on a {want[0]} ({shape})")
