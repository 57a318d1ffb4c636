"""Partition a Relax `main` into alternating device and CPU segments.

Placement of each op is decided by the forge op registry (`forge_fe.op.RELAX_TO_OP`):
an op goes to the device when a Forge op claims it, that op's `from_relax` rule
accepts this instance (shape/attr/dtype constraints), the op has a TTIR lowering,
and the user did not force it to the CPU. Everything else falls back to the CPU,
where TVM compiles it for the host; an op TVM cannot legalize either is an error
(all such ops are reported at once).

Segments are maximal runs of same-placement bindings in program order, so any
number of alternating device/CPU segments is supported. Tuple plumbing
(TupleGetItem, aliases) is moved next to its producer first so it never
straddles a segment boundary.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import tvm
from tvm import relax

from forge_fe.errors import UnsupportedOpError
from forge_fe.op import RELAX_TO_OP, NotOnDevice

DEVICE, CPU = "device", "cpu"


@dataclass
class Placement:
    """One row of the placement report."""
    name: str          # the Relax variable the op defines
    op: str            # Relax op name (e.g. relax.nn.conv2d)
    forge_op: str      # Forge op it maps to, or "" when none
    where: str         # "device" or "cpu"
    reason: str


@dataclass
class Segment:
    kind: str
    name: str
    bindings: list = field(default_factory=list)
    inputs: list = field(default_factory=list)      # relax.Var defined outside the segment
    outputs: list = field(default_factory=list)     # relax.Var used after the segment
    func: relax.Function | None = None


@dataclass
class Partition:
    segments: list[Segment]
    placements: list[Placement]
    main_params: list                     # relax.Var of main, in order
    main_outputs: list                    # relax exprs returned by main (flattened tuple)
    module: tvm.IRModule | None = None    # segments as functions + a main that calls them (artifact)


def op_name(call) -> str:
    return call.op.name if isinstance(call.op, tvm.ir.Op) else str(call.op)


def canonical_op_name(relax_name: str) -> str:
    """User-facing op name: relax.nn.softmax -> softmax (used by cpu_fallback_ops)."""
    return relax_name.rsplit(".", 1)[-1]


#: ops tvm.compile lowers in its DispatchSortScan pass, not through FLegalize
_SORT_SCAN_OPS = {"relax.topk", "relax.sort", "relax.argsort", "relax.cumsum", "relax.cumprod"}

#: ops tvm.compile lowers to VM builtins in its LowerRuntimeBuiltin pass (memory.view: ONNX BitCast)
_RUNTIME_BUILTIN_OPS = {"relax.memory.view", "relax.unique", "relax.nonzero"}


def _cpu_can_run(call) -> bool:
    return isinstance(call.op, tvm.ir.Op) and (call.op.get_attr("FLegalize") is not None
                                                or call.op.name in _SORT_SCAN_OPS | _RUNTIME_BUILTIN_OPS)


def place_call(call, cpu_fallback_ops: set[str]) -> tuple[str, str, str]:
    """(where, forge op name, reason) for one Relax call."""
    name = op_name(call)
    forge = RELAX_TO_OP.get(name)
    short = canonical_op_name(name)
    if forge is not None and (short in cpu_fallback_ops or forge.name in cpu_fallback_ops):
        return CPU, forge.name, "forced to CPU by cpu_fallback_ops"
    if forge is None:
        return CPU, "", "no device op for this Relax op"
    if forge.lower is None and forge.decompose is None:
        return CPU, forge.name, f"forge op '{forge.name}' has no TTIR lowering"
    try:
        forge.from_relax(call)
    except NotOnDevice as exc:
        return CPU, forge.name, str(exc)
    from forge_fe.ttir.emitter import element_type
    for a in list(call.args) + [call]:
        ty = a.ty
        if isinstance(ty, relax.TensorType):
            try:
                element_type(str(ty.dtype))
            except ValueError:
                return CPU, forge.name, f"dtype {ty.dtype} has no device element type"
            if ty.shape is None or not all(isinstance(d, tvm.ir.prim.expr.IntImm) for d in ty.shape.values):
                return CPU, forge.name, "a shape decided at run time (device programs are compiled for static shapes)"
    return DEVICE, forge.name, "supported"


def _plumbing_sources(v) -> list:
    if isinstance(v, relax.TupleGetItem):
        return [v.tuple_value]
    if isinstance(v, relax.Tuple):
        return list(v.fields)
    return [v]


def _schedule_by_placement(bindings, where):
    """A topological order of the (pure) bindings that switches between device and CPU as rarely as
    a greedy list schedule can: keep taking the earliest ready binding of the current placement,
    switch only when none is ready. Dependencies include symbolic dims (a match_cast defines them),
    so a value-dependent shape never has to cross a segment boundary."""
    import heapq
    producer = {}
    for i, b in enumerate(bindings):
        producer[b.var] = i
        if isinstance(b, relax.MatchCast):
            producer.update((tv, i) for tv in relax.analysis.definable_tir_vars_in_type(b.var.ty))
    users = [[] for _ in bindings]
    pending = [0] * len(bindings)
    for i, b in enumerate(bindings):
        for j in {producer[u] for u in relax.analysis.free_vars(b.value) if u in producer}:
            users[j].append(i)
            pending[i] += 1
    ready = {DEVICE: [], CPU: []}
    for i in range(len(bindings)):
        if not pending[i]:
            heapq.heappush(ready[where[bindings[i].var]], i)
    order, current = [], where[bindings[0].var] if bindings else DEVICE
    while ready[DEVICE] or ready[CPU]:
        if not ready[current]:
            current = CPU if current == DEVICE else DEVICE
        i = heapq.heappop(ready[current])
        order.append(bindings[i])
        for k in users[i]:
            pending[k] -= 1
            if not pending[k]:
                heapq.heappush(ready[where[bindings[k].var]], k)
    return order


def _hoist_plumbing(bindings):
    """Move TupleGetItem / alias / Tuple bindings right after the bindings they read.

    Valid because the block is pure: plumbing depends only on its sources."""
    # Each non-plumbing binding opens a group; plumbing joins the group of its latest source, right
    # after that source (one dict lookup per source, not a scan of everything placed so far).
    groups, group_of = [[]], {}          # groups[0]: plumbing that reads only function parameters
    for b in bindings:
        v = b.value
        if isinstance(v, (relax.TupleGetItem, relax.Var, relax.Tuple)):
            deps = [d for d in _plumbing_sources(v) if isinstance(d, relax.Var) and d in group_of]
            g = max((group_of[d] for d in deps), default=0)
            members = groups[g]
            pos = max((i for i, x in enumerate(members) if any(x.var.same_as(d) for d in deps)), default=-1)
            members.insert(pos + 1, b)
            group_of[b.var] = g
        else:
            groups.append([b])
            group_of[b.var] = len(groups) - 1
    return [b for g in groups for b in g]


def _flatten_return(ret, bindings):
    """The flat list of tensors main returns; the tuple bindings that only build it are dropped."""
    tuples = {b.var: b for b in bindings if isinstance(b.value, relax.Tuple)}
    dropped = set()

    def flat(e):
        if isinstance(e, relax.Var) and e in tuples:
            dropped.add(e)
            return [x for f in tuples[e].value.fields for x in flat(f)]
        if isinstance(e, relax.Tuple):
            return [x for f in e.fields for x in flat(f)]
        return [e]

    outs = flat(ret)
    # Keep a tuple binding that something other than the return also reads.
    used = {u for b in bindings if b.var not in dropped for u in relax.analysis.free_vars(b.value)}
    dropped -= used
    return outs, [b for b in bindings if b.var not in dropped]


def partition(mod: tvm.IRModule, cpu_fallback_ops: set[str]) -> Partition:
    # Plain Vars everywhere, so segment functions can take any value as a parameter.
    mod = relax.transform.ToNonDataflow()(mod)
    func = mod["main"]
    body = func.body
    bindings = [b for block in body.blocks for b in block.bindings]
    main_outputs, bindings = _flatten_return(body.body, bindings)
    bindings = _hoist_plumbing(bindings)

    # 1. placement of each op call
    where: dict = {}
    placements, unsupported = [], []
    for b in bindings:
        v = b.value
        if isinstance(v, relax.Call):
            w, forge, reason = place_call(v, cpu_fallback_ops)
            if w == CPU and not _cpu_can_run(v):
                unsupported.append(f"{op_name(v)} (defines {b.var.name}): {reason}; TVM cannot run it on the host either")
            placements.append(Placement(b.var.name, op_name(v), forge, w, reason))
            where[b.var] = w
        elif not isinstance(v, (relax.TupleGetItem, relax.Var, relax.Tuple, tvm.ir.expr.Constant)):
            placements.append(Placement(b.var.name, type(v).__name__, "", CPU, "not an op call"))
            where[b.var] = CPU
    if unsupported:
        raise UnsupportedOpError("partition", "ops that neither the device nor the CPU can run:\n    "
                                 + "\n    ".join(unsupported),
                                 "rewrite the model to avoid them, or report the op so it can be added")

    # A device op returning a tuple is usable only through its `result_index` field.
    producers = {b.var: b.value for b in bindings if isinstance(b.value, relax.Call)}
    for b in bindings:
        v = b.value
        if isinstance(v, relax.TupleGetItem) and where.get(v.tuple_value) == DEVICE:
            call = producers.get(v.tuple_value)
            _, attrs = RELAX_TO_OP[op_name(call)].from_relax(call)
            if attrs.get("result_index", 0) != v.index:
                where[v.tuple_value] = CPU
                for p in placements:
                    if p.name == v.tuple_value.name:
                        p.where, p.reason = CPU, f"uses output {v.index} of a multi-output op"

    # Tuple plumbing and constants follow what they read (now that op placements are final).
    for b in bindings:
        v = b.value
        if isinstance(v, relax.TupleGetItem):
            where[b.var] = where.get(v.tuple_value, CPU)
        elif isinstance(v, relax.Var):
            where[b.var] = where.get(v, CPU)
        elif isinstance(v, relax.Tuple):
            ws = {where.get(f) for f in v.fields if isinstance(f, relax.Var) and f in where}
            where[b.var] = DEVICE if ws == {DEVICE} else CPU
        elif b.var not in where:
            where[b.var] = CPU

    # 2. segments = maximal runs of equal placement, after an order that makes the runs long
    bindings = _schedule_by_placement(bindings, where)
    segments: list[Segment] = []
    for b in bindings:
        w = where[b.var]
        if not segments or segments[-1].kind != w:
            segments.append(Segment(w, f"{w}_{len(segments)}"))
        segments[-1].bindings.append(b)

    # 3. segment inputs/outputs by def-use
    defined_in = {}
    for i, s in enumerate(segments):
        for b in s.bindings:
            defined_in[b.var] = i
    used_after: dict = {}
    for i, s in enumerate(segments):
        for b in s.bindings:
            for u in relax.analysis.free_vars(b.value):
                used_after.setdefault(u, set()).add(i)
    for o in main_outputs:
        for u in relax.analysis.free_vars(o) if not isinstance(o, relax.Var) else [o]:
            used_after.setdefault(u, set()).add(len(segments))
    # Symbolic dims (a match_cast of nonzero's result) are defined by the segment holding the match_cast.
    for i, s in enumerate(segments):
        for b in s.bindings:
            if isinstance(b, relax.MatchCast):
                defined_in.update((tv, i) for tv in relax.analysis.definable_tir_vars_in_type(b.var.ty))
    for i, s in enumerate(segments):
        seen = set()
        for b in s.bindings:
            for u in relax.analysis.free_vars(b.value):
                if defined_in.get(u) != i and u not in seen:
                    seen.add(u)
                    s.inputs.append(u)
        s.outputs = [b.var for b in s.bindings if any(j > i for j in used_after.get(b.var, ()))]
        for v in s.inputs + s.outputs:
            if not isinstance(v.ty, relax.TensorType):
                raise UnsupportedOpError("partition", f"segment {s.name} would pass non-tensor value "
                                         f"'{v.name}' ({v.ty}) across a device/CPU boundary",
                                         "force the producing op onto the same side with cpu_fallback_ops")
        s.func = _segment_function(s)

    part = Partition(segments, placements, list(func.params), main_outputs)
    part.module = _partitioned_module(part)
    return part


def _segment_function(s: Segment) -> relax.Function:
    """A standalone Relax function for the segment, with fresh variables."""
    outs = list(s.outputs)
    ret = outs[0] if len(outs) == 1 else relax.Tuple(outs)
    ret_ty = outs[0].ty if len(outs) == 1 else relax.TupleType([o.ty for o in outs])
    fn = relax.Function(list(s.inputs), relax.SeqExpr([relax.BindingBlock(list(s.bindings))], ret), ret_ty)
    return relax.utils.copy_with_new_vars(fn).with_attr("global_symbol", s.name)


def _partitioned_module(part: Partition) -> tvm.IRModule:
    """The partition artifact: one function per segment and a `main` that calls them in order."""
    bb = relax.BlockBuilder()
    params = [relax.Var(p.name, p.ty) for p in part.main_params]
    env = dict(zip(part.main_params, params))
    with bb.function("main", params):
        for s in part.segments:
            gv = bb.add_func(s.func, s.name)
            out = bb.emit(relax.Call(gv, [env[v] for v in s.inputs]), name_hint=s.name)
            if len(s.outputs) == 1:
                env[s.outputs[0]] = out
            else:
                for k, v in enumerate(s.outputs):
                    env[v] = bb.emit(relax.TupleGetItem(out, k), name_hint=v.name)
        rets = [env.get(o, o) for o in part.main_outputs]
        bb.emit_func_output(rets[0] if len(rets) == 1 else relax.Tuple(rets))
    return bb.get()
