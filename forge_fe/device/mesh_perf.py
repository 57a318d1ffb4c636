"""Performance model of a mesh: per-chip compute from the single-chip model, collectives from
the ethernet links.

    program time = compute (forge_fe.device.perf_model on the per-chip program: every chip runs the
                   same program on its shards, so one chip's estimate is the mesh's)
                 + link time (the sum over its collectives of the model below)

No overlap of compute and communication is modeled (tt-metal can fuse all-gather with matmul;
forge_fe's programs don't). For a collective over a mesh axis of n chips, per-chip input bytes
B (tile-padded, in the tensor's data format), per-direction bandwidth W = usable links between
neighbouring chips x link bandwidth, per-hop latency L (forge_fe/systems.py, with sources):

    all_gather      ring: (n-1) B / (2 W) + ceil((n-1)/2) L   both ring directions, each chip
                          receives (n-1) B (tt-metal CCL guide, "Bidirectionality")
                    line: (n-1) B / W + (n-1) L               half the bidirectional peak
                                                              (same guide, "Line Topology")
    reduce_scatter  (n-1) (B/n) / W + (n-1) L + adds          unidirectional ring (the guide:
                                                              "bidirectional ... not implemented")
                    adds: (n-1) chunk tiles x 50 cycles (perf_model's add) over the grid
    all_reduce      reduce_scatter of B, then all_gather of B/n
    mesh_partition  0 (a local slice); mesh_shard: host transfers, not modeled
"""
from __future__ import annotations

import math

from forge_fe.binary import model as bm
from forge_fe.systems import HOP_LATENCY_S, Mesh
from forge_fe.device import perf_model
from forge_fe.device.perf_model import TILE_CYCLES, tensor_bytes

COLLECTIVES = ("ttir.all_reduce", "ttir.all_gather", "ttir.reduce_scatter")


def _adds_s(nbytes_chunk: float, t: bm.TensorDesc, system: bm.SystemDesc, steps: int) -> float:
    chunk_tiles = nbytes_chunk / (perf_model.TILE_ELEMS * perf_model.bytes_per_element(t.data_format, t.dtype))
    cores = perf_model.grid_cores(system)
    return steps * chunk_tiles * TILE_CYCLES["add"] / (min(cores, max(1.0, chunk_tiles)) * system.clock_hz)


def collective_time(name: str, t_in: bm.TensorDesc, axis: int, mesh: Mesh, system: bm.SystemDesc) -> float:
    """Seconds for one collective on `axis` whose per-chip input is `t_in`."""
    n = mesh.shape[axis]
    if n == 1:
        return 0.0
    w = mesh.axis_bandwidth(axis)
    ring = mesh.axes[axis].topology == "ring"
    b = tensor_bytes(t_in)

    def gather(nbytes):
        if ring:
            return (n - 1) * nbytes / (2 * w) + math.ceil((n - 1) / 2) * HOP_LATENCY_S
        return (n - 1) * nbytes / w + (n - 1) * HOP_LATENCY_S

    def scatter(nbytes):
        return (n - 1) * (nbytes / n) / w + (n - 1) * HOP_LATENCY_S + _adds_s(nbytes / n, t_in, system, n - 1)

    if name == "ttir.all_gather":
        return gather(b)
    if name == "ttir.reduce_scatter":
        return scatter(b)
    if name == "ttir.all_reduce":
        return scatter(b) + gather(b / n)
    return 0.0


def program_link_time(prog: bm.Program, mesh: Mesh, system: bm.SystemDesc) -> tuple[float, dict]:
    total, by_kind = 0.0, {}
    for op in prog.ops:
        if op.name in COLLECTIVES:
            s = collective_time(op.name, prog.tensors[op.inputs[0]], int(op.attrs["cluster_axis"]), mesh, system)
            total += s
            k = op.name.split(".", 1)[1]
            by_kind[k] = by_kind.get(k, 0.0) + s
    return total, by_kind


def mesh_perf(programs: list, system: bm.SystemDesc, mesh: Mesh, fidelity) -> dict:
    """Compute vs link time of every per-call program (binary Programs), and the totals."""
    out, compute, link = {}, 0.0, 0.0
    for prog in programs:
        if prog.private:
            continue
        c = perf_model.summarize(perf_model.estimate_program(prog, system, fidelity), system)
        ls, kinds = program_link_time(prog, mesh, system)
        out[prog.name] = {"compute_ms": c["estimated_latency_s"] * 1e3, "link_ms": ls * 1e3,
                          "link_ms_by_collective": {k: v * 1e3 for k, v in kinds.items()}}
        compute += c["estimated_latency_s"]
        link += ls
    return {"compute_time_ms": compute * 1e3, "link_time_ms": link * 1e3, "total_time_ms": (compute + link) * 1e3,
            "programs": out}
