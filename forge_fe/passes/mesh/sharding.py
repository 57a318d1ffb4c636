"""How a tensor is laid out over a mesh, and where parameter shardings come from.

A `Sharding` says, per tensor dim, which mesh axis splits it (or none), and over which mesh
axes the local values are partial sums still to be reduced (a row-parallel matmul's result).
Every mesh axis splits at most one dim, and an axis a tensor is partial over splits none of its
dims (GSPMD's tiled + partial-replication states, restricted to one axis per dim).

Seeds (the shardings the propagation pass starts from):

* explicit: `CompilerConfig(shard_specs={"*.q_proj.weight": ("y", None), ...})`, globs on the
  framework's parameter (or input) names, one entry per dim of the framework's tensor
  ("x"/"y"/0/1 or None);
* automatic (Megatron-LM, Shoeybi et al. 2019): column-parallel QKV/up/gate projections (their
  output features split over the tensor-parallel axis), row-parallel output/down projections
  (input features split: the matmul leaves partial sums, one all-reduce per block),
  vocab-parallel embedding and LM head, everything else (norms, biases of row-parallel layers,
  position embeddings) replicated; model inputs split along their batch dim over the other
  (data-parallel) axis when it divides.

The automatic rule recognizes a parameter's role by its name and finds which of its dims is a
matmul's output (N) or contraction (K) dim by following its uses, so torch Linear ([out, in])
and GPT-2's Conv1D ([in, out]) weights both shard correctly.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from forge_fe.errors import ForgeError
from forge_fe.systems import AXIS_NAMES, Mesh, axis_index


@dataclass(frozen=True)
class Sharding:
    dims: tuple                                   # per tensor dim: mesh axis (0/1) splitting it, or None
    partial: frozenset = field(default_factory=frozenset)   # mesh axes the values are partial sums over

    @staticmethod
    def replicated(rank: int) -> "Sharding":
        return Sharding((None,) * rank)

    @property
    def is_replicated(self) -> bool:
        return all(d is None for d in self.dims) and not self.partial

    def local_shape(self, shape, mesh: Mesh) -> tuple:
        return tuple(int(s) // (mesh.shape[a] if a is not None else 1) for s, a in zip(shape, self.dims))

    def with_dim(self, dim: int, axis) -> "Sharding":
        dims = list(self.dims)
        dims[dim] = axis
        return Sharding(tuple(dims), self.partial)

    def without_partial(self, axis=None) -> "Sharding":
        return Sharding(self.dims, frozenset() if axis is None else self.partial - {axis})

    def axes_used(self) -> set:
        return {a for a in self.dims if a is not None} | set(self.partial)

    def __str__(self):
        text = "[" + ", ".join("-" if a is None else AXIS_NAMES[a] for a in self.dims) + "]"
        if self.partial:
            text += " partial(" + ",".join(AXIS_NAMES[a] for a in sorted(self.partial)) + ")"
        return text


def _spec_error(name, message, mesh):
    return ForgeError("shard", f"shard spec for '{name}': {message}",
                      f"a spec lists one entry per dim of the framework tensor: 'x', 'y' or None, on mesh "
                      f"{mesh.shape[0]}x{mesh.shape[1]} ('x' has {mesh.shape[0]} chips, 'y' {mesh.shape[1]}); "
                      "each axis once, and it must divide the dim (docs/mesh.md)")


def sharding_from_spec(name: str, spec, shape, mesh: Mesh) -> Sharding:
    """An explicit spec tuple for a tensor of `shape` -> Sharding (errors name the tensor)."""
    if spec is None:
        return Sharding.replicated(len(shape))
    spec = tuple(spec)
    if len(spec) != len(shape):
        raise _spec_error(name, f"{len(spec)} entries for a tensor of rank {len(shape)} {list(shape)}", mesh)
    dims = tuple(None if s is None else axis_index(s, mesh, f"shard spec for '{name}'") for s in spec)
    used = [a for a in dims if a is not None]
    if len(used) != len(set(used)):
        raise _spec_error(name, f"{spec} uses a mesh axis twice", mesh)
    for d, a in enumerate(dims):
        if a is not None and shape[d] % mesh.shape[a]:
            raise _spec_error(name, f"dim {d} (size {shape[d]}) does not divide over axis "
                              f"'{AXIS_NAMES[a]}' of {mesh.shape[a]} chips", mesh)
    return Sharding(dims)


# ---- the automatic (Megatron) rule ------------------------------------------------------

COLUMN_PARALLEL = ["*q_proj.weight", "*k_proj.weight", "*v_proj.weight", "*gate_proj.weight", "*up_proj.weight",
                   "*attention.self.query.weight", "*attention.self.key.weight", "*attention.self.value.weight",
                   "*intermediate.dense.weight", "*attn.c_attn.weight*", "*mlp.c_fc.weight", "*fc1.weight",
                   "*w1.weight", "*w3.weight", "*qkv_proj.weight", "*query_key_value.weight", "*lm_head.weight"]
ROW_PARALLEL = ["*o_proj.weight", "*down_proj.weight", "*attention.output.dense.weight", "*.output.dense.weight",
                "*attn.c_proj.weight", "*mlp.c_proj.weight", "*fc2.weight", "*w2.weight", "*out_proj.weight",
                "*dense_4h_to_h.weight"]
VOCAB_PARALLEL = ["*embed_tokens.weight", "*word_embeddings.weight", "*wte.weight", "*shared.weight"]


def parameter_role(name: str) -> str | None:
    """'column', 'row', 'vocab' or None (replicated) for a framework parameter name."""
    for role, globs in (("vocab", VOCAB_PARALLEL), ("column", COLUMN_PARALLEL), ("row", ROW_PARALLEL)):
        if any(fnmatch.fnmatchcase(name, g) for g in globs):
            return role
    return None


def tensor_parallel_axis(mesh: Mesh) -> int | None:
    """The larger mesh axis carries tensor parallelism (axis 1 on a tie); None on one chip."""
    if mesh.size == 1:
        return None
    return 0 if mesh.shape[0] > mesh.shape[1] else 1


def data_parallel_axis(mesh: Mesh) -> int | None:
    tp = tensor_parallel_axis(mesh)
    if tp is None or mesh.shape[1 - tp] == 1:
        return None
    return 1 - tp
