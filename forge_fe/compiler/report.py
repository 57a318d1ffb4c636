"""Compile report: where each op runs and why, stage timings, and a printable summary."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


def placement_rows(placements) -> list[dict]:
    return [{"name": p.name, "op": p.op, "forge_op": p.forge_op, "where": p.where, "reason": p.reason}
            for p in placements]


def placement_table(placements) -> str:
    return format_placement(placement_rows(placements))


def format_placement(rows: list[dict]) -> str:
    """The placement rows (as in a binary's placement.json) as an aligned table with totals."""
    w = max([len(r["name"]) for r in rows] + [4])
    o = max([len(r["op"]) for r in rows] + [2])
    lines = [f"{'name':<{w}}  {'op':<{o}}  where   reason"]
    lines += [f"{r['name']:<{w}}  {r['op']:<{o}}  {r['where']:<6}  {r['reason']}" for r in rows]
    c = Counter(r["where"] for r in rows)
    lines.append(f"\n{c.get('device', 0)} ops on device, {c.get('cpu', 0)} on CPU")
    return "\n".join(lines) + "\n"


def device_numerics_notes(graphs) -> list[str]:
    """Where the emulated device computes differently from the framework on purpose, for these
    device graphs: one sentence each, naming up to three nodes (reported, never silent)."""
    from forge_fe.config import DataFormat
    found = {"int64": [], "float64": [], "float16": [], "bfp": []}
    for g in graphs:
        for n in g.nodes:
            if n.dtype == "int64":
                found["int64"].append(n.name)
            elif n.dtype in ("float64", "float16"):
                found[n.dtype].append(n.name)
            if n.df in (DataFormat.Bfp8_b, DataFormat.Bfp4_b):
                found["bfp"].append(n.name)

    def where(names):
        return f"{len(names)} device tensors, e.g. {', '.join(names[:3])}"
    notes = []
    if found["int64"]:
        notes.append(f"int64 is computed as int32 on the device ({where(found['int64'])}): results outside "
                     "[-2^31, 2^31) wrap around, and int64 inputs outside that range are refused at run time")
    if found["float64"]:
        notes.append(f"float64 is computed as float32 on the device ({where(found['float64'])}): about 7 "
                     "significant digits, values beyond 3.4e38 become inf, float64 subnormals become 0")
    if found["float16"]:
        notes.append(f"float16 is computed as float32 on the device ({where(found['float16'])}): values are "
                     "rounded to float16 where they leave the device, not after every op, so results are "
                     "closer to the exact ones than the framework's float16 arithmetic (a float16 -> float32 "
                     "cast shows the difference)")
    if found["bfp"]:
        notes.append(f"Bfp8_b/Bfp4_b tensors ({where(found['bfp'])}) flush subnormals to zero, and an inf "
                     "sets its 16-value block's shared exponent, so the block's other values become 0")
    return notes


@dataclass
class CompileReport:
    model_name: str
    framework: str
    placement: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    stopped_after: str | None = None
    segments: list[str] = field(default_factory=list)
    artifacts: dict[str, str] = field(default_factory=dict)
    perf: dict = field(default_factory=dict)
    #: deliberate differences of the device's numerics from the framework (device_numerics_notes)
    numerics_notes: list[str] = field(default_factory=list)
    mesh: dict = field(default_factory=dict)     # multi-chip compiles only (docs/mesh.md)

    def to_dict(self) -> dict:
        d = {"model": self.model_name, "framework": self.framework, "placement": self.placement,
             "perf": self.perf, "timings_s": self.timings, "stopped_after": self.stopped_after,
             "segments": self.segments, "artifacts": self.artifacts, "numerics_notes": self.numerics_notes}
        if self.mesh:
            d["mesh"] = self.mesh
        return d

    def summary(self) -> str:
        c = Counter(r["where"] for r in self.placement)
        total = sum(c.values()) or 1
        lines = [f"model {self.model_name} ({self.framework})",
                 f"  ops: {sum(c.values())}  device: {c.get('device', 0)} ({100 * c.get('device', 0) / total:.1f}%)"
                 f"  cpu: {c.get('cpu', 0)}",
                 f"  segments: {' -> '.join(self.segments) if self.segments else '-'}",
                 f"  compile time: {sum(self.timings.values()):.2f} s  ("
                 + ", ".join(f"{k} {v:.2f}" for k, v in self.timings.items()) + ")"]
        if self.perf:
            p = self.perf
            lines.append(f"  estimated device latency ({p['arch']}): {p['estimated_latency_s'] * 1e3:.3f} ms "
                         f"(roofline {p['roofline_latency_s'] * 1e3:.3f} ms, utilization "
                         f"{100 * p['utilization']:.0f}%; {p['compute_bound_ops']} ops compute-bound, "
                         f"{p['memory_bound_ops']} memory-bound, {p.get('noc_bound_ops', 0)} NoC-bound, "
                         f"{p.get('free_ops', 0)} fused or views)")
        if self.mesh:
            from forge_fe.passes.mesh.memory import human
            m = self.mesh
            line = (f"  mesh {m['system']} {m['shape'][0]}x{m['shape'][1]}: per chip weights "
                    f"{human(m['per_device_weight_bytes'])}, peak {human(m['per_device_peak_bytes'])} "
                    f"({'fits' if m['fits'] else 'does not fit'}); collectives "
                    + (", ".join(f"{k} x{v}" for k, v in m["collectives"].items()) or "none"))
            if "link_time_ms" in m:
                line += f"; compute {m['compute_time_ms']:.3f} ms + link {m['link_time_ms']:.3f} ms"
            lines.append(line)
        cpu = [r for r in self.placement if r["where"] == "cpu"]
        if cpu:
            lines.append("  on CPU:")
            for op, n in Counter((r["op"], r["reason"]) for r in cpu).most_common():
                lines.append(f"    {op[0]} x{n}: {op[1]}")
        if self.numerics_notes:
            lines.append("  device numerics that differ from the framework on purpose:")
            lines += [f"    {note}" for note in self.numerics_notes]
        if self.stopped_after:
            lines.append(f"  stopped after stage '{self.stopped_after}' (CompileDepth)")
        return "\n".join(lines)
