"""Per-chip DRAM plan of a program compiled for a mesh.

What a chip holds, in bytes of tile-padded tensors in their device data format
(perf_model.tensor bytes: last two dims padded to 32, Float32 4 B, Float16_b 2 B, Bfp8_b 1088/1024 B
per element):

* weights: its shard of every parameter and constant of the per-call programs, and of every
  const-eval result (those are computed once at load and stay resident);
* load peak: the per-call programs' own weights plus, while const-eval runs, the values it has
  alive: a parameter is loaded for its first reader and freed after its last one (the runtime
  keeps only the const-eval results), results stay;
* run peak: the weights plus the largest set of activations alive at once in a per-call program
  (a value is alive from the op that makes it to its last reader; program inputs from the start);
* KV cache (programs of forge_fe.compile_lm): the cache tensors the program writes (index_copy);
  they persist between calls, are updated in place, and count next to the weights.

peak = max(load peak, run peak) must fit the chip's DRAM (SystemDesc.dram_size: 12 GiB on
Wormhole, 32 GiB on Blackhole). A global tensor that crosses the program boundary lives on the
host; only its per-chip pieces (the mesh_shard results) count.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from forge_fe.graph.graph import INPUT, Graph, Node
from forge_fe.device.perf_model import TILE_ELEMS, bytes_per_element, tiles


def node_bytes(n: Node) -> int:
    return int(tiles(n.shape) * TILE_ELEMS * bytes_per_element(n.df, n.dtype))


@dataclass
class ProgramMemory:
    name: str
    weights: list = field(default_factory=list)      # [(framework name, bytes, from const-eval)] shards
    activation_peak: int = 0
    kv_cache: int = 0                                # bytes of the KV-cache pieces it writes

    @property
    def weight_bytes(self) -> int:
        return sum(w[1] for w in self.weights)


def _is_boundary_shard(n: Node) -> bool:
    return n.op is not None and n.op.name == "mesh_shard"


def program_memory(graph: Graph, name: str, private: bool = False) -> ProgramMemory:
    """Weights and activation peak of one per-chip graph (a sharded one, or a one-chip graph).
    In a const-eval (private) program the weights are transient values like any other."""
    pm = ProgramMemory(name)
    sharded = any(_is_boundary_shard(n) for n in graph.nodes)
    resident = set()

    def weight_source(n: Node):
        """The weight a device-resident tensor is the shard of, if it is one."""
        if sharded:
            if _is_boundary_shard(n) and n.attrs["shard_direction"] == "full_to_shard":
                src = n.inputs[0]
                if src.is_const or (src.kind == INPUT and src.meta.get("consteval")):
                    return src
            return None
        return n if n.is_const or (n.kind == INPUT and n.meta.get("consteval")) else None

    for n in graph.nodes:
        src = weight_source(n)
        if src is not None:
            name = src.meta.get("weight_of") or src.meta.get("framework_name", src.name)
            pm.weights.append((name, node_bytes(n), src.kind == INPUT))
            resident.add(n)
    writes = [n for n in graph.nodes if n.op is not None and n.op.name == "index_copy"]
    pm.kv_cache = sum(node_bytes(n) for n in writes)
    kv = set(writes) | {n.inputs[0] for n in writes}      # written in place, kept between calls
    # activations: a simple liveness sweep in program order
    last = {}
    for i, n in enumerate(graph.nodes):
        for x in n.inputs:
            last[x] = i
    on_host = set()
    if sharded:         # global arguments and results live on the host; their pieces on the chips
        on_host = {n for n in graph.nodes if n.kind == INPUT or n.is_const}
        on_host |= {n for n in graph.outputs if _is_boundary_shard(n)}
    live, peak = 0, 0
    alive = {}
    for i, n in enumerate(graph.nodes):
        if n not in on_host and n not in kv and (private or n not in resident):
            alive[n] = node_bytes(n)
            live += alive[n]
        peak = max(peak, live)
        for x in set(n.inputs):
            if last.get(x) == i and x in alive and x not in graph.outputs:
                live -= alive.pop(x)
    pm.activation_peak = peak
    return pm


@dataclass
class MemoryPlan:
    dram_bytes: int                                  # per chip
    programs: list = field(default_factory=list)     # [ProgramMemory], per-call and const-eval (private)
    private: set = field(default_factory=set)        # names of const-eval programs

    @property
    def weight_bytes(self) -> int:
        return sum(p.weight_bytes for p in self.programs if p.name not in self.private)

    @property
    def load_peak(self) -> int:
        """The per-call programs' own weights, plus one const-eval program's inputs and live values."""
        own = sum(w[1] for p in self.programs if p.name not in self.private for w in p.weights if not w[2])
        return own + max([p.activation_peak for p in self.programs if p.name in self.private] + [0])

    @property
    def kv_cache_bytes(self) -> int:
        return max([p.kv_cache for p in self.programs if p.name not in self.private] + [0])

    @property
    def run_peak(self) -> int:
        return self.weight_bytes + max([p.activation_peak + p.kv_cache for p in self.programs
                                        if p.name not in self.private] + [0])

    @property
    def peak_bytes(self) -> int:
        return max(self.load_peak, self.run_peak)

    @property
    def fits(self) -> bool:
        return self.peak_bytes <= self.dram_bytes

    def largest_weights(self, k: int = 3) -> list:
        """The biggest resident weight shards: (framework name, bytes per chip)."""
        every = {}
        for p in self.programs:
            if p.name not in self.private:
                for name, nbytes, _ in p.weights:
                    every[name] = every.get(name, 0) + nbytes
        return sorted(every.items(), key=lambda w: -w[1])[:k]

    def to_json(self) -> dict:
        return {"per_device_weight_bytes": self.weight_bytes, "per_device_kv_cache_bytes": self.kv_cache_bytes,
                "per_device_peak_bytes": self.peak_bytes,
                "per_device_load_peak_bytes": self.load_peak, "per_device_run_peak_bytes": self.run_peak,
                "dram_bytes_per_device": self.dram_bytes, "fits": self.fits}


def plan(programs: list, dram_bytes: int) -> MemoryPlan:
    """programs: [(name, per-chip graph, private)] of every device unit."""
    mp = MemoryPlan(dram_bytes)
    for name, graph, private in programs:
        mp.programs.append(program_memory(graph, name, private))
        if private:
            mp.private.add(name)
    return mp


def human(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"
