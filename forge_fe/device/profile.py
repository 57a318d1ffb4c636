"""Per-op profile of the emulated device's runtime (`forge-fe run --profile`).

The executor calls `Profiler.record(kind, name, seconds)` around every device kernel and
CPU segment while a profiler is attached (`Executor.profiler`); with none attached the
hot loop pays one `is None` test per op. The table groups by op type, like
onnxruntime's profiler summary (op type, calls, total, per call, share), and a second
table lists the slowest single op instances (program position + TTIR loc).
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass
class Profiler:
    #: (kind, op type) -> [calls, seconds]
    by_type: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0.0]))
    #: (kind, op type, loc) -> [calls, seconds]
    by_node: dict = field(default_factory=lambda: defaultdict(lambda: [0, 0.0]))
    runs: int = 0
    wall_s: float = 0.0

    def record(self, kind: str, name: str, loc: str, seconds: float):
        for table, key in ((self.by_type, (kind, name)), (self.by_node, (kind, name, loc))):
            entry = table[key]
            entry[0] += 1
            entry[1] += seconds

    def run(self, fn, *args):
        """Call fn(*args) as one profiled run (its wall time is the table's 100%)."""
        t0 = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.wall_s += time.perf_counter() - t0
            self.runs += 1

    def rows(self) -> list[dict]:
        runs = max(self.runs, 1)
        total = sum(s for _, s in self.by_type.values()) or 1e-12
        rows = [{"kind": k, "op": n, "calls": c // runs, "total_ms": s * 1e3 / runs,
                 "per_call_us": s * 1e6 / max(c, 1), "share": s / total}
                for (k, n), (c, s) in self.by_type.items()]
        return sorted(rows, key=lambda r: -r["total_ms"])

    def table(self, top_nodes: int = 10) -> str:
        runs = max(self.runs, 1)
        rows = self.rows()
        kernel_ms = sum(r["total_ms"] for r in rows)
        wall_ms = self.wall_s * 1e3 / runs
        lines = [f"profile over {self.runs} run(s): wall {wall_ms:.2f} ms per run, kernels {kernel_ms:.2f} ms, "
                 f"executor overhead {max(wall_ms - kernel_ms, 0.0):.2f} ms",
                 f"{'kind':6s} {'op type':32s} {'calls':>6s} {'total ms':>10s} {'us/call':>10s} {'share':>7s}"]
        for r in rows:
            lines.append(f"{r['kind']:6s} {r['op']:32s} {r['calls']:6d} {r['total_ms']:10.3f} "
                         f"{r['per_call_us']:10.1f} {100 * r['share']:6.1f}%")
        nodes = sorted(self.by_node.items(), key=lambda kv: -kv[1][1])[:top_nodes]
        if nodes:
            lines.append(f"\nslowest {len(nodes)} op instances:")
            lines.append(f"{'kind':6s} {'op type':32s} {'loc':40s} {'ms/run':>9s}")
            for (k, n, loc), (_, s) in nodes:
                lines.append(f"{k:6s} {n:32s} {loc[:40]:40s} {s * 1e3 / runs:9.3f}")
        return "\n".join(lines)
