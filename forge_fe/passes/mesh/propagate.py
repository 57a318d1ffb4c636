"""The sharding pass: propagate shardings through a Forge graph and rewrite it into the
per-chip (SPMD) program, inserting collectives where a value's layout has to change.

GSPMD-style (Xu et al. 2021, "GSPMD: general and scalable parallelization for ML computation
graphs"), forward in topological order from the seeds (parameters, inputs):

* every op has a rule that reads its operands' shardings and decides its result's; most rules
  are written with *dim labels* (einsum-like): operand and result dims that are the same
  iteration dim share a label, a label gets at most one mesh axis, taken from the first
  (most-sharded) operand that splits it, and a label that is summed away (matmul's K, a sum's
  reduced dim) leaves the result a partial sum over its axis;
* operands are then resharded to what the op needs: `all_reduce` ends a partial sum
  (`reduce_scatter` when the consumer wants the sum split), `all_gather` joins a split dim
  that must be whole, `mesh_partition` splits a whole one (a local slice, no traffic);
* parameters and constants without a seed take the layout their first user wants (they are
  distributed at load time, so that costs nothing); a seeded one keeps its seed;
* a value's resharding is made once and shared by all its users.

The result is one Forge graph with per-chip shapes, global-shaped arguments and results, and
`mesh_shard` at the boundary (tt-mlir's convention); `Partitioner.log` lists the sharding of
every node and the collectives in front of it (the `11_sharding.txt` artifact).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from forge_fe.errors import CompileError
from forge_fe.graph.graph import INPUT, Graph, Node
from forge_fe.passes.mesh.sharding import Sharding
from forge_fe.systems import AXIS_NAMES, Mesh
from forge_fe.op import OPS, OpDef, eltwise

COLLECTIVE_NAMES = ("all_reduce", "reduce_scatter", "all_gather", "mesh_partition")


@dataclass
class SValue:
    """A value of the source graph as the per-chip program holds it."""
    orig: Node                   # the source node (global shape, dtype, data format, name)
    node: Node | None            # its per-chip node; None for a constant not placed yet
    sharding: Sharding | None    # None for an unseeded constant that is not placed yet
    global_shape: tuple | None = None    # for values the pass makes itself (else the source node's)

    @property
    def shape(self):
        return self.orig.shape if self.global_shape is None else self.global_shape


class Partitioner:
    """Builds the per-chip graph of `graph` on `mesh`, starting from `seeds` (source node -> Sharding)."""

    def __init__(self, graph: Graph, mesh: Mesh, seeds: dict):
        self.src, self.mesh, self.seeds = graph, mesh, seeds
        self.out = Graph(graph.name)
        self.values: dict[Node, SValue] = {}
        self.log: list[str] = []
        self.collectives: Counter = Counter()
        self._global: dict[Node, Node] = {}     # source input/constant -> its global node in the new graph
        self._placed: dict = {}                 # (source input/constant, Sharding) -> per-chip node
        self._resharded: dict = {}              # (per-chip node, Sharding) -> SValue
        self.output_shardings: list[Sharding] = []

    # ---- the pass --------------------------------------------------------------------
    def run(self) -> Graph:
        for n in self.src.inputs:     # arguments keep their order; unseeded ones are placed as first used
            g = self._global[n] = self.out.add_input(n.name, n.shape, n.dtype)
            g.meta, g.df = dict(n.meta), n.df
            s = self.seeds.get(n)
            self.values[n] = SValue(n, None, None) if s is None else SValue(n, self._piece(n, s), s)
        for n in self.src.nodes:
            if n.kind == INPUT:
                continue
            if n.is_const:
                self.values[n] = SValue(n, None, self.seeds.get(n))
                continue
            rule = RULES.get(n.op.name) or (elementwise if n.op in ELEMENTWISE else replicate)
            try:
                v = rule(self, n, [self.values[i] for i in n.inputs])
            except CompileError:
                raise
            except Exception as exc:
                raise CompileError("shard", f"sharding op '{n.op.name}' (node '{n.name}', "
                                   f"from {n.meta.get('framework_name', 'the model')}) failed: {exc}") from exc
            self.values[n] = v
            self.log.append(f"%{n.name} = {n.op.name} : {list(n.shape)} -> {list(v.node.shape)} {v.sharding}")
        outs = []
        for o in self.src.outputs:
            v = self.values[o]
            v = self.place(v, (v.sharding or Sharding.replicated(len(o.shape))).without_partial())
            self.output_shardings.append(v.sharding)
            outs.append(self._mesh_shard(v.node, o, v.sharding, "shard_to_full", name=f"{o.name}.full"))
            self.log.append(f"return %{o.name} {v.sharding}")
        self.out.outputs = outs
        return self.out

    # ---- building blocks -------------------------------------------------------------
    def emit(self, op: OpDef, name: str, ins: list[Node], attrs: dict, like: Node, sharding: Sharding,
             shape=None) -> Node:
        """A per-chip op node; checks its shape against the sharding of the global `shape`."""
        node = self.out.add_op(op, name, ins, attrs, meta=like.meta)
        node.df = like.df
        want = sharding.local_shape(like.shape if shape is None else shape, self.mesh)
        if tuple(node.shape) != want:
            raise CompileError("shard", f"per-chip shape of '{name}' ({op.name}) is {list(node.shape)}, expected "
                               f"{list(want)} for sharding {sharding} of {list(like.shape if shape is None else shape)}",
                               "this is a bug in the sharding rule of this op; please report it")
        return node

    def _mesh_shard(self, x: Node, like: Node, s: Sharding, direction: str, name=None) -> Node:
        """tt-mlir's mesh_shard: shard_shape = pieces per tensor dim, shard_dims = the dim each mesh
        axis splits (-1: none); a tensor every chip holds whole is shard_type replicate."""
        pieces = [self.mesh.shape[a] if a is not None else 1 for a in s.dims]
        devices = any(p > 1 for p in pieces)
        split = [next((d for d, a in enumerate(s.dims) if a == axis), -1) for axis in (0, 1)]
        attrs = {"shard_type": "devices" if devices else "replicate", "shard_direction": direction,
                 "shard_shape": pieces if devices else [1], "shard_dims": split if devices else [-1],
                 "mesh_shape": list(self.mesh.shape)}
        node = self.out.add_op(OPS["mesh_shard"], name or f"{like.name}.shard", [x], attrs, meta=like.meta)
        node.df = like.df
        return node

    def _collective(self, name: str, x: Node, like: Node, sharding: Sharding, shape, **attrs) -> Node:
        self.collectives[name] += 1
        desc = ", ".join(f"{k}={AXIS_NAMES[v] if k == 'cluster_axis' else v}" for k, v in attrs.items())
        self.log.append(f"  {name}({desc}) of %{like.name} -> {sharding}")
        return self.emit(OPS[name], f"{like.name}.{name}", [x], dict(attrs, mesh_shape=list(self.mesh.shape)),
                         like, sharding, shape=shape)

    def place(self, v: SValue, want: Sharding) -> SValue:
        """`v` laid out as `want` (no partial sums): a constant is placed, a value resharded."""
        if v.node is None:
            if v.sharding is None or v.sharding == want:    # unseeded arguments adopt the layout asked for
                return SValue(v.orig, self._piece(v.orig, want), want)
            v = SValue(v.orig, self._piece(v.orig, v.sharding), v.sharding)
        if v.sharding == want:
            return v
        key = (v.node, want)
        if key not in self._resharded:
            self._resharded[key] = self._reshard(v, want)
        return self._resharded[key]

    def placed(self, v: SValue) -> SValue:
        """`v` with a per-chip node, in its current layout (constants: their seed, else replicated)."""
        if v.node is not None:
            return v
        return self.place(v, v.sharding or Sharding.replicated(len(v.shape)))


    def _piece(self, n: Node, s: Sharding) -> Node:
        """The per-chip piece (laid out as `s`) of a program argument: an input or a constant."""
        key = (n, s)
        if key not in self._placed:
            g = self._global.get(n)
            if g is None:
                g = self._global[n] = self.out.add_const(n.name, n.value, kind=n.kind, meta=n.meta)
                g.df = n.df
            self._placed[key] = self._mesh_shard(g, n, s, "full_to_shard")
            self.log.append(f"%{n.name} = {n.kind} : {list(n.shape)} {s}")
        return self._placed[key]

    def new_const(self, name: str, value: np.ndarray, s: Sharding, like: Node) -> Node:
        """A constant the pass itself needs (e.g. per-chip vocabulary offsets), placed as `s`."""
        g = self.out.add_const(name, value)
        g.df = like.df if value.dtype.kind == "f" else g.df
        return self._mesh_shard(g, g, s, "full_to_shard")

    def _reshard(self, v: SValue, want: Sharding) -> SValue:
        have, x, like = v.sharding, v.node, v.orig
        shape = v.shape
        for a in sorted(have.partial):
            d = next((d for d, w in enumerate(want.dims) if w == a and have.dims[d] is None), None)
            if d is not None and shape[d] % self.mesh.shape[a] == 0:
                have = Sharding(have.dims, have.partial - {a}).with_dim(d, a)
                x = self._collective("reduce_scatter", x, like, have, shape, scatter_dim=d, cluster_axis=a)
            else:
                have = have.without_partial(a)
                x = self._collective("all_reduce", x, like, have, shape, cluster_axis=a)
        for d, (h, w) in enumerate(zip(have.dims, want.dims)):
            if h is not None and h != w:
                have = have.with_dim(d, None)
                x = self._collective("all_gather", x, like, have, shape, all_gather_dim=d, cluster_axis=h)
        for d, (h, w) in enumerate(zip(have.dims, want.dims)):
            if h is None and w is not None:
                have = have.with_dim(d, w)
                x = self._collective("mesh_partition", x, like, have, shape, dim=d, cluster_axis=w)
        return SValue(like, x, have, v.global_shape)


# ---- dim-label rules ------------------------------------------------------------------------

def assign_labels(ins: list[SValue], labels: list[list], fixed=()) -> dict:
    """label -> mesh axis, from the operands' current splits (most-sharded operand first)."""
    assign, used = {}, set()
    order = sorted(range(len(ins)), key=lambda i: -sum(a is not None for a in (ins[i].sharding or Sharding(())).dims))
    for i in order:
        s = ins[i].sharding
        if s is None:
            continue
        for lab, a in zip(labels[i], s.dims):
            if lab is None or a is None or lab in fixed or lab in assign or a in used:
                continue
            assign[lab] = a
            used.add(a)
    return assign


def label_rule(p: Partitioner, n: Node, ins: list[SValue], in_labels, out_labels, sum_labels=(), fixed=(),
               op: OpDef | None = None, attrs: dict | None = None, name: str | None = None,
               keep_partial: bool = False, shape=None) -> SValue:
    """The generic rule: assign labels, reshard operands to them, emit the op on per-chip values.
    With `keep_partial` (ops linear in all operands together: add, subtract, data movement),
    operands partial over the same axes and already laid out as wanted stay partial, and so does
    the result; otherwise partial operands are reduced first."""
    assign = assign_labels(ins, in_labels, fixed)
    out_set = set(out_labels)
    summed = frozenset(a for lab, a in assign.items() if lab in sum_labels and lab not in out_set)
    assign = {lab: a for lab, a in assign.items() if lab in out_set or lab in sum_labels}
    wants = [Sharding(tuple(assign.get(lab) if lab is not None else None for lab in labs)) for labs in in_labels]
    common = {v.sharding.partial if v.sharding is not None else None for v in ins}
    partial = next(iter(common)) if keep_partial and len(common) == 1 else None
    if partial and all(v.node is not None and v.sharding == Sharding(w.dims, partial) for v, w in zip(ins, wants)):
        local = [v.node for v in ins]
    else:
        partial = frozenset()
        local = [p.place(v, w).node for v, w in zip(ins, wants)]
    out = Sharding(tuple(assign.get(lab) if lab is not None else None for lab in out_labels), partial | summed)
    if callable(attrs):
        attrs = attrs(out)
    node = p.emit(op or n.op, name or n.name, local, n.attrs if attrs is None else attrs, n, out, shape=shape)
    return SValue(n, node, out)


def _aligned(shape, out_shape, prefix="d"):
    """Labels of an operand broadcast (numpy-style, aligned right) to out_shape; None = broadcast dim."""
    off = len(out_shape) - len(shape)
    return [f"{prefix}{off + k}" if s == out_shape[off + k] else None for k, s in enumerate(shape)]


def _all(shape, prefix="d"):
    return [f"{prefix}{k}" for k in range(len(shape))]


def elementwise(p, n, ins, op=None, name=None):
    labels = [_aligned(v.shape, n.shape) for v in ins]
    linear = (op or n.op).name in ("add", "subtract")
    return label_rule(p, n, ins, labels, _all(n.shape), op=op, name=name, keep_partial=linear)


def _matmul_labels(a_shape, b_shape, out_shape, transpose_b):
    batch = out_shape[:-2]
    la = _aligned(a_shape[:-2], batch, "b") + ["m", "k"]
    lb = _aligned(b_shape[:-2], batch, "b") + (["n", "k"] if transpose_b else ["k", "n"])
    return la, lb, _all(batch, "b") + ["m", "n"]


def matmul(p, n, ins):
    la, lb, lo = _matmul_labels(ins[0].shape, ins[1].shape, n.shape, n.attrs.get("transpose_b"))
    if len(ins) == 2:
        return label_rule(p, n, ins, [la, lb], lo, sum_labels={"k"})
    lbias = _aligned(ins[2].shape, n.shape)[:-1] + ["n"]
    if "k" in assign_labels(ins, [la, lb, lbias]):
        # row-parallel: partial sums; the bias is added once, to the reduced result
        mm = label_rule(p, n, ins[:2], [la, lb], lo, sum_labels={"k"}, op=OPS["matmul"],
                        attrs={"transpose_b": n.attrs.get("transpose_b", False)}, name=f"{n.name}.matmul")
        axis = mm.sharding.dims[-1]
        bias = p.place(ins[2], Sharding((None,) * (len(ins[2].shape) - 1) + (axis,)))
        shape = (1,) * (len(n.shape) - 1) + (n.shape[-1],)          # TTIR adds equal-rank operands
        s = Sharding((None,) * (len(shape) - 1) + (axis,))
        b = p.emit(OPS["reshape"], f"{n.name}.bias", [bias.node], {"shape": list(s.local_shape(shape, p.mesh))},
                   n, s, shape=shape)
        return elementwise(p, n, [mm, SValue(n, b, s, shape)], op=OPS["add"])
    return label_rule(p, n, ins, [la, lb, lbias], lo)


def reduction(p, n, ins):
    rank = len(ins[0].shape)
    dims = {d % rank for d in n.attrs["dims"]} if rank else set()
    lin = _all(ins[0].shape)
    lout = [None if k in dims else lab for k, lab in enumerate(lin)] if n.attrs.get("keep_dim") \
        else [lab for k, lab in enumerate(lin) if k not in dims]
    reduced = {lin[k] for k in dims}
    if n.op.name == "sum":           # a sum over a split dim: local sums, partial over its axis
        return label_rule(p, n, ins, [lin], lout, sum_labels=reduced)
    return label_rule(p, n, ins, [lin], lout, fixed=reduced)


def along(dim_attr):
    """Ops that need one dim whole (softmax's dim, concat's dim)."""
    def rule(p, n, ins):
        rank = len(n.shape)
        d = n.attrs[dim_attr] % rank
        labels = [_all(v.shape) for v in ins]
        return label_rule(p, n, ins, labels, _all(n.shape), fixed={f"d{d}"})
    return rule


def rotary_embedding(p, n, ins):
    """Elementwise over broadcast cos/sin, except that the last dim (rotated by halves) stays whole."""
    labels = [_aligned(v.shape, n.shape) for v in ins]
    return label_rule(p, n, ins, labels, _all(n.shape), fixed={f"d{len(n.shape) - 1}"})


def layer_norm(p, n, ins):
    rank, k = len(n.shape), len(n.attrs["normalized_shape"])
    trailing = {f"d{d}" for d in range(rank - k, rank)}
    return label_rule(p, n, ins, [_all(n.shape)] + [_aligned(v.shape, n.shape) for v in ins[1:]], _all(n.shape),
                      fixed=trailing)


def permute(p, n, ins):
    perm = n.attrs["perm"]
    lin = _all(ins[0].shape)
    return label_rule(p, n, ins, [lin], [lin[i] for i in perm], keep_partial=True)


def slice_(p, n, ins):
    a, shape = n.attrs, ins[0].shape
    cut = {f"d{d}" for d in range(len(shape)) if a["begins"][d] != 0 or a["ends"][d] < shape[d] or a["steps"][d] != 1}

    def local(out):       # a split dim is sliced whole: its end is the per-chip size
        sizes = out.local_shape(n.shape, p.mesh)
        return dict(a, ends=[sizes[d] if out.dims[d] is not None else e for d, e in enumerate(a["ends"])])
    return label_rule(p, n, ins, [_all(shape)], _all(shape), fixed=cut, attrs=local)


def broadcast(p, n, ins):
    return label_rule(p, n, ins, [_aligned(ins[0].shape, n.shape)], _all(n.shape),
                      attrs=lambda out: dict(n.attrs, shape=list(out.local_shape(n.shape, p.mesh))))


def repeat(p, n, ins):
    reps = n.attrs["repeats"]
    return label_rule(p, n, ins, [_all(n.shape)], _all(n.shape), fixed={f"d{d}" for d, r in enumerate(reps) if r != 1})


def batch_only(p, n, ins):
    """conv/pool: only the batch dim (dim 0 in NCHW and NHWC) may stay split (data parallel)."""
    labels = [["n"] + [None] * (len(ins[0].shape) - 1)] + [[None] * len(v.shape) for v in ins[1:]]
    return label_rule(p, n, ins, labels, ["n"] + [None] * (len(n.shape) - 1))


def replicate(p, n, ins):
    """Ops without a rule run on whole tensors: correct for any op, at the cost of gathering."""
    return label_rule(p, n, ins, [[None] * len(v.shape) for v in ins], [None] * len(n.shape))


def reshape(p, n, ins):
    """A split dim stays split if the reshape keeps its block contiguous: the result dim with the same
    product of the dims before it, if the axis divides it. Otherwise the dim is gathered first."""
    x = p.placed(ins[0])
    s, a_shape, b_shape = x.sharding, list(x.shape), list(n.shape)
    out = [None] * len(b_shape)
    gather = []
    for d, axis in enumerate(s.dims):
        if axis is None:
            continue
        prefix = int(np.prod(a_shape[:d]))
        e = next((e for e in range(len(b_shape)) if int(np.prod(b_shape[:e])) == prefix and b_shape[e] > 1
                  and b_shape[e] % p.mesh.shape[axis] == 0), None)
        if e is None:
            gather.append(d)
        else:
            out[e] = axis
    partial = s.partial
    if gather:
        x = p.place(x, Sharding(tuple(None if d in gather else a for d, a in enumerate(s.dims))))
        partial = frozenset()
    o = Sharding(tuple(out), partial)
    node = p.emit(n.op, n.name, [x.node], dict(n.attrs, shape=list(o.local_shape(n.shape, p.mesh))), n, o)
    return SValue(n, node, o)


def take(p, n, ins):
    if "index" in n.attrs:            # x.select(axis, i): that axis stays whole
        ax = n.attrs["axis"]
        lin = _all(ins[0].shape)
        return label_rule(p, n, ins, [lin], [lab for k, lab in enumerate(lin) if k != ax], fixed={lin[ax]})
    table, idx = ins
    li = _all(idx.shape, "i")
    ax = n.attrs.get("axis", 0)
    if ax != 0 or len(table.shape) != 2:      # a gather along an axis (not an embedding): it stays whole
        lt = _all(table.shape)
        return label_rule(p, n, ins, [lt, li], lt[:ax] + li + lt[ax + 1:], fixed={lt[ax]})
    vocab = table.sharding.dims[0] if table.sharding is not None else None
    if vocab is None:
        return label_rule(p, n, ins, [["v", "e"], li], li + ["e"], fixed={"v"})
    return vocab_parallel_take(p, n, table, idx, vocab)


def vocab_parallel_take(p, n, table, idx, axis):
    """Megatron's vocab-parallel embedding: chip k holds rows [k V/n, (k+1) V/n); it looks up the ids
    in its range, writes zeros for the others, and the sum over the axis (a partial) is the lookup."""
    chips, vocab = p.mesh.shape[axis], table.shape[0]
    rows = vocab // chips
    tbl = p.place(table, Sharding((axis, None)))
    ids = p.place(idx, (idx.sharding or Sharding.replicated(len(idx.shape))).without_partial())
    if axis in ids.sharding.dims:          # the ids may not be split over the vocabulary axis
        ids = p.place(ids, Sharding(tuple(None if a == axis else a for a in ids.sharding.dims)))
    r, s = len(idx.shape), ids.sharding
    ones = (1,) * r
    ishape = idx.shape
    lo_node = ids.node

    def op(name, kind, xs, gshape, sharding, **attrs):
        return p.emit(OPS[kind], f"{n.name}.{name}", xs, attrs, n, sharding, shape=gshape)

    one = Sharding((None,) * r)
    offset = p.new_const(f"{n.name}.vocab_offset", (np.arange(chips, dtype=np.int32) * rows).reshape((chips,) + ones[1:]),
                         Sharding((axis,) + (None,) * (r - 1)), n)
    zero_i = p.new_const(f"{n.name}.zero", np.zeros(ones, np.int32), one, n)
    rows_i = p.new_const(f"{n.name}.rows", np.full(ones, rows, np.int32), one, n)
    rel = op("local_ids", "subtract", [lo_node, offset], ishape, s)
    valid = op("in_range", "logical_and", [op("ge", "greater_equal", [rel, zero_i], ishape, s),
                                            op("lt", "less", [rel, rows_i], ishape, s)], ishape, s)
    safe = op("safe_ids", "where", [valid, rel, zero_i], ishape, s)
    looked = op("rows", "take", [tbl.node, safe], n.shape, Sharding(s.dims + (None,)), axis=0)
    mask = op("mask", "reshape", [valid], tuple(ishape) + (1,), Sharding(s.dims + (None,)),
              shape=list(s.local_shape(ishape, p.mesh)) + [1])
    zero_f = p.new_const(f"{n.name}.zero_f", np.zeros(ones + (1,), np.float32), Sharding((None,) * (r + 1)), n)
    out = Sharding(s.dims + (None,), frozenset({axis}))
    return SValue(n, op("masked", "where", [mask, looked, zero_f], n.shape, out), out)


def cache_write(p, n, ins):
    """index_copy (KV-cache write): the cache and the new rows split alike (batch, heads, head dim);
    the sequence dims whole. The rows written come from the column-parallel k/v projections, so the
    cache ends up split over the heads: each chip keeps its heads' cache."""
    labels = [["b", "h", "s", "d"], ["b", "h", "r", "d"]] + [[None] * len(v.shape) for v in ins[2:]]
    return label_rule(p, n, ins, labels, ["b", "h", "s", "d"], fixed={"s", "r"})


ELEMENTWISE = {v for v in vars(eltwise).values() if isinstance(v, OpDef)}
RULES = {
    "matmul": matmul, "linear": matmul, "sum": reduction, "mean": reduction, "max": reduction, "min": reduction,
    "prod": reduction, "softmax": along("dim"), "log_softmax": along("dim"), "concat": along("dim"),
    "layer_norm": layer_norm, "rms_norm": layer_norm, "permute": permute, "reshape": reshape, "slice": slice_, "broadcast": broadcast,
    "repeat": repeat, "take": take, "conv2d": batch_only, "max_pool2d": batch_only, "avg_pool2d": batch_only,
    "global_avg_pool2d": batch_only, "index_copy": cache_write, "rotary_embedding": rotary_embedding,
}
