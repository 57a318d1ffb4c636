"""Program-level placement for the performance model: fusion, L1 residency, sharding.

forge_fe.device.perf_model prices one op at a time; what a TTNN program costs also depends on where its
tensors live between ops. This module walks a device program once, in order, and decides per op
and tensor what tt-metal's hand-tuned model programs (and tt-mlir's optimizer) would do:

* **Fusion.** An activation (relu, gelu, silu, sigmoid, tanh, clamp, leaky_relu) whose operand is
  the single-reader result of a matmul, linear, conv2d or binary eltwise op runs inside that op,
  on its destination registers (TTNN's `activation=` / fused_activation): its SFPU cycles are
  added to the producer, and the intermediate is never written, read or launched.
* **Views.** A reshape that keeps the last dim and the tile rows (second-last dims that are
  multiples of 32, or only leading dims regrouped) is metadata on tiled tensors: free. Any other
  reshape is an untilize, a row-major reshape and a tilize (perf_model prices it so).
* **L1 residency.** Activations stay in L1, sharded over the cores of the op that makes them,
  while the live set fits the per-core activation budget (`L1_ACTIVATION_FRACTION` of the usable
  L1; the rest holds the circular buffers that stream weights and operands). A result that does
  not fit, and every program output, goes to DRAM (interleaved). Program inputs (activations
  from the host and weights) start in DRAM; weights are read from DRAM on every run.
* **Sharding.** A tensor viewed as [rows, cols] of tiles is height-sharded (rows over cores),
  width-sharded (cols over cores) or block-sharded (a rows x cols grid of cores), whichever uses
  the most cores of the grid; that core count bounds the parallelism of the op producing it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from forge_fe.binary import model as bm

#: fraction of the usable per-core L1 that holds sharded activations (the rest: circular buffers)
L1_ACTIVATION_FRACTION = 0.6

FUSABLE_ACTIVATIONS = {"ttir.relu", "ttir.gelu", "ttir.silu", "ttir.sigmoid", "ttir.tanh", "ttir.clamp_scalar",
                       "ttir.leaky_relu"}
FUSING_PRODUCERS = {"ttir.matmul", "ttir.linear", "ttir.conv2d", "ttir.add", "ttir.multiply", "ttir.subtract"}
#: ops that take an elementwise prologue: softmax(x * scale + mask) is one TTNN op (scale_mask_softmax)
PROLOGUE_CONSUMERS = {"ttir.softmax"}
PROLOGUE_OPS = {"ttir.multiply", "ttir.add", "ttir.subtract", "ttir.div"}


def tile_grid(shape) -> tuple[int, int]:
    """(tile rows, tile cols) of a tensor viewed 2-D: all leading dims fold into the rows."""
    shape = [int(d) for d in shape] or [1]
    rows = math.prod(shape[:-1]) if len(shape) > 1 else 1
    if len(shape) > 1:
        rows = math.prod(shape[:-2]) * -(-shape[-2] // 32)
    return max(1, rows), max(1, -(-shape[-1] // 32))


def sharding(shape, grid) -> tuple[str, int, tuple[int, int]]:
    """(scheme, cores, (core rows, core cols)) of the sharding that uses the most cores."""
    rows, cols = tile_grid(shape)
    gr, gc = int(grid[0]), int(grid[1])
    total = gr * gc
    options = [("block", min(gr, rows) * min(gc, cols), (min(gr, rows), min(gc, cols))),
               ("height", min(total, rows), (min(total, rows), 1)),
               ("width", min(total, cols), (1, min(total, cols)))]
    return max(options, key=lambda o: o[1])        # ties keep the first: block, then height


def is_view_reshape(src, dst) -> bool:
    """A reshape that moves no data on tiled tensors (same last dim, same tile rows)."""
    src, dst = [int(d) for d in src] or [1], [int(d) for d in dst] or [1]
    if src[-1] != dst[-1]:
        return False
    if len(src) < 2 or len(dst) < 2:
        return math.prod(src) == math.prod(dst)
    if src[-2] == dst[-2]:
        return True                                # only leading (batch) dims regrouped
    return src[-2] % 32 == 0 and dst[-2] % 32 == 0  # whole tile rows regrouped


@dataclass
class OpPlace:
    """Where an op's operands and result live, and whether it runs inside another op."""
    fused_into: int | None = None     # index of the op this one runs inside, or None
    prologue: bool = False            # fused into its consumer: its result streams, never stored
    fused: list = field(default_factory=list)   # indices of ops fused into this one
    view: bool = False                # a free reshape
    in_l1: list = field(default_factory=list)   # per input: read from L1 (True) or DRAM
    out_l1: bool = False
    out_cores: int = 0                # cores the result is sharded over (0: DRAM, interleaved)
    scheme: str = "interleaved"
    core_grid: tuple = (0, 0)


def plan_program(program: bm.Program, system: bm.SystemDesc, tensor_bytes,
                 l1_fraction: float = L1_ACTIVATION_FRACTION) -> list[OpPlace]:
    """One OpPlace per op of `program` (see the module docstring for the rules); `tensor_bytes(desc)`
    is the device size of a tensor (perf_model's, passed in so this module stays below it)."""
    ops = program.ops
    readers: dict[int, list[int]] = {}
    for i, op in enumerate(ops):
        for t in op.inputs:
            readers.setdefault(t, []).append(i)
    outputs = set(program.outputs)
    producer = {op.outputs[0]: i for i, op in enumerate(ops) if op.outputs}
    places = [OpPlace() for _ in ops]

    # Fusion: an activation runs inside the op making its operand (transitively: conv -> add -> relu).
    for i, op in enumerate(ops):
        if op.name not in FUSABLE_ACTIVATIONS or not op.inputs:
            continue
        src = op.inputs[0]
        j = producer.get(src)
        if j is None or ops[j].name not in FUSING_PRODUCERS or len(readers.get(src, [])) != 1 or src in outputs:
            continue
        root = places[j].fused_into if places[j].fused_into is not None else j
        places[i].fused_into = root
        places[root].fused.append(i)

    # Prologues: the scale and mask feeding a softmax stream into it tile by tile.
    streamed = set()
    for i, op in enumerate(ops):
        if op.name not in PROLOGUE_CONSUMERS or not op.inputs:
            continue
        src = op.inputs[0]
        while True:
            j = producer.get(src)
            if j is None or ops[j].name not in PROLOGUE_OPS or len(readers.get(src, [])) != 1 or src in outputs \
                    or places[j].fused:
                break
            places[j].fused_into, places[j].prologue = i, True
            places[i].fused.append(j)
            streamed.add(src)
            src = ops[j].inputs[0]

    # Residency: walk in order with the live set of L1-resident tensors (per-core bytes).
    budget = l1_fraction * system.l1_size
    last_read = {t: max(rs) for t, rs in readers.items()}
    resident: dict[int, float] = {}     # tensor index -> bytes per core while it lives in L1
    alias = {}                          # tensor -> the tensor holding its data (fusions, views)
    held_until = {}                     # data tensor -> last op reading it or any of its aliases
    for i, op in enumerate(ops):
        p = places[i]
        ins = [alias.get(t, t) for t in op.inputs]
        p.in_l1 = [t in resident or t in streamed for t in ins]
        out = op.outputs[0] if op.outputs else None
        if p.prologue:                            # its result streams into the consumer
            pass
        elif p.fused_into is not None:            # the result is the root's (already placed) result
            alias[out] = alias.get(op.inputs[0], op.inputs[0])
            root_out = alias[out]
            if out in outputs and root_out in resident:
                resident.pop(root_out)            # the fused chain ends in a program output: DRAM
                places[p.fused_into].out_l1 = False
        elif op.name == "ttir.reshape" and is_view_reshape(program.tensors[op.inputs[0]].shape,
                                                           program.tensors[out].shape):
            p.view = True
            alias[out] = ins[0]
            p.out_l1 = ins[0] in resident
        elif out is not None:
            desc = program.tensors[out]
            scheme, cores, core_grid = sharding(desc.shape, system.grid)
            per_core = tensor_bytes(desc) / cores
            ends_in_output = out in outputs or any(ops[k].outputs and ops[k].outputs[0] in outputs
                                                   for k in places[i].fused)
            if not ends_in_output and sum(resident.values()) + per_core <= budget:
                resident[out] = per_core
                p.out_l1, p.out_cores, p.scheme, p.core_grid = True, cores, scheme, core_grid
        if out is not None and out in alias:      # the data lives as long as its last alias is read
            held = alias[out]
            held_until[held] = max(held_until.get(held, last_read.get(held, -1)), last_read.get(out, -1))
        for t in set(ins):                        # free what no later op reads
            if held_until.get(t, last_read.get(t, -1)) <= i:
                resident.pop(t, None)
    return places
