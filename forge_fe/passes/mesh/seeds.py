"""Where the sharding pass starts: parameter and input shardings of a device unit's programs.

A unit has a forward graph and, usually, a const-eval graph that transforms weights once at load
(e.g. the transposes of torch Linear weights); const-eval output i is the forward input
`forward.inputs[-len(const_eval.outputs) + i]` (passes/consteval.py). Parameters live in either.
"""
from __future__ import annotations

import fnmatch
import math

from forge_fe.errors import ForgeError
from forge_fe.graph.graph import Graph, Node
from forge_fe.passes.mesh.sharding import (Sharding, data_parallel_axis, parameter_role, sharding_from_spec,
                                    tensor_parallel_axis)
from forge_fe.systems import AXIS_NAMES, Mesh
from forge_fe.op import OPS


def _framework_name(n: Node) -> str:
    return n.meta.get("framework_name", n.name)


def _role_dims(param: Node, graphs: list[Graph], bridge: dict) -> dict:
    """How `param` is used: {"N": dim, "K": dim, "vocab": dim} for the param's dims that become a
    matmul's output / contraction dim or an embedding table's row dim, following permutes and
    the const-eval -> forward boundary (`bridge`)."""
    users = {}
    for g in graphs:
        users.update(g.users())
    found = {}
    stack = [(param, list(range(len(param.shape))))]      # (node, param dim -> node dim)
    seen = set()
    while stack:
        node, dmap = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if node in bridge:
            stack.append((bridge[node], dmap))
        for u in users.get(node, []):
            if u.op is OPS["permute"]:
                perm = list(u.attrs["perm"])
                stack.append((u, [perm.index(d) for d in dmap]))
            elif u.op in (OPS["matmul"], OPS["linear"]) and u.inputs[1] is node and len(node.shape) >= 2:
                r = len(node.shape)
                k, n = (r - 1, r - 2) if u.attrs.get("transpose_b") else (r - 2, r - 1)
                found.setdefault("K", dmap.index(k))
                found.setdefault("N", dmap.index(n))
                found.setdefault("heads", _heads(u, users))
            elif u.op is OPS["take"] and u.inputs[0] is node and "index" not in u.attrs and u.attrs["axis"] == 0:
                found.setdefault("vocab", dmap.index(0))
    return found


def _heads(mm: Node, users: dict) -> int | None:
    """How many attention heads a projection's output is split into: the reshape (through reshapes)
    turning its last dim N into [..., heads, N / heads]; None if it is not split into heads."""
    node = mm
    while len(users.get(node, [])) == 1 and users[node][0].op is OPS["reshape"]:
        r = users[node][0]
        # [..., N] -> [..., heads, N / heads], the leading dims kept or regrouped ([B*S, N] -> [B, S, h, d])
        if len(r.shape) >= 2 and r.shape[-2] * r.shape[-1] == node.shape[-1] and r.shape[-1] != node.shape[-1] \
                and math.prod(r.shape[:-2]) == math.prod(node.shape[:-1]):
            return r.shape[-2]
        node = r
    return None


def parameter_seeds(graphs: list[Graph], bridge: dict, mesh: Mesh, specs: dict | None, notes: list) -> dict:
    """Seeds for the parameters of `graphs` (const-eval first, then forward)."""
    seeds = {}
    params = [n for g in graphs for n in g.nodes if n.kind == "parameter"]
    if specs is not None:
        for n in params:
            name = _framework_name(n)
            spec = next((s for g, s in specs.items() if fnmatch.fnmatchcase(name, g)), "unmatched")
            if spec != "unmatched":
                seeds[n] = sharding_from_spec(name, spec, n.shape, mesh)
        return seeds
    tp = tensor_parallel_axis(mesh)
    if tp is None:
        return seeds
    chips = mesh.shape[tp]
    for n in params:
        name = _framework_name(n)
        role = parameter_role(name)
        if role is None:
            continue
        uses = _role_dims(n, graphs, bridge)
        dim = {"column": uses.get("N"), "row": uses.get("K"), "vocab": uses.get("vocab", uses.get("N"))}[role]
        if dim is None:
            notes.append(f"{name}: {role}-parallel by name, but no matmul/embedding use found: replicated")
        elif n.shape[dim] % chips:
            notes.append(f"{name}: {role}-parallel dim {dim} (size {n.shape[dim]}) does not divide over "
                         f"axis '{AXIS_NAMES[tp]}' of {chips} chips: replicated")
        elif role == "column" and uses.get("heads") and uses["heads"] % chips:
            # fewer (KV) heads than chips: each chip computes them all (Megatron's KV replication),
            # cheaper than splitting inside a head and gathering it back
            notes.append(f"{name}: {uses['heads']} heads do not divide over axis '{AXIS_NAMES[tp]}' of {chips} "
                         "chips: replicated")
        else:
            seeds[n] = Sharding.replicated(len(n.shape)).with_dim(dim, tp)
    return seeds


def input_seeds(graph: Graph, inputs: list[Node], mesh: Mesh, specs: dict | None, notes: list) -> dict:
    """Model inputs: an explicit spec matching the input's name, else split along dim 0 (the
    batch) over the data-parallel axis when it divides, else replicated."""
    seeds = {}
    dp = data_parallel_axis(mesh) if specs is None else None
    for n in inputs:
        if specs is not None:
            spec = next((s for g, s in specs.items() if fnmatch.fnmatchcase(n.name, g)), "unmatched")
            if spec != "unmatched":
                seeds[n] = sharding_from_spec(n.name, spec, n.shape, mesh)
            continue
        if dp is not None and n.shape and n.shape[0] > 1 and n.shape[0] % mesh.shape[dp] == 0:
            seeds[n] = Sharding.replicated(len(n.shape)).with_dim(0, dp)
        elif dp is not None:
            notes.append(f"input {n.name}: batch {n.shape[0] if n.shape else 1} does not divide over axis "
                         f"'{AXIS_NAMES[dp]}' of {mesh.shape[dp]} chips: replicated (no data parallelism)")
    return seeds


def check_specs(specs: dict | None, names: set):
    """Every explicit spec must match something: a typo would silently replicate the tensor."""
    if not specs:
        return
    unmatched = [g for g in specs if not any(fnmatch.fnmatchcase(n, g) for n in names)]
    if unmatched:
        sample = ", ".join(sorted(names)[:6])
        raise ForgeError("shard", f"shard_specs {unmatched} match no parameter or input of the model",
                         f"specs are globs on the framework's names, e.g. {sample} ...")
