"""Compile time and compile memory against model size, one fresh process per model.

    python benchmarks/bench_compile_scale.py                       # Llama hidden 1024, 4..64 layers
    python benchmarks/bench_compile_scale.py --layers 4,8,16       # fewer points
    python benchmarks/bench_compile_scale.py --layers 32 --run     # the ~410M model, also run it once
    python benchmarks/bench_compile_scale.py --config llama-3.2-1b --run   # Llama-3.2-1B's shape

For each model a child process builds it from a transformers config (random weights), notes its
RSS, resets the kernel's peak-RSS counter (/proc/self/clear_refs), compiles, and reports:

- compile time, and per doubling of the layer count the ratio to the previous point (goal <= 2.0);
- extra peak = peak RSS during compile - RSS once the model is built, as a multiple of the fp32
  weights (goal <= 0.5 for the 32-layer model): what compiling costs beyond the model itself;
- the time of each pipeline stage, so a superlinear stage shows up by name, and the CPU time the
  cyclic garbage collector took in it (gc.callbacks), so gc pressure shows up too.

Each point runs alone (the children run one after another), with a timeout. The machine is
shared: time ratios carry its noise; memory figures do not.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

#: hidden 1024 (GQA 16/8 heads, SwiGLU 2816, vocab 32000, tied embeddings): 32 layers ~ 410M parameters
SCALE = dict(hidden_size=1024, intermediate_size=2816, num_attention_heads=16, num_key_value_heads=8,
             vocab_size=32000, max_position_embeddings=2048, tie_word_embeddings=True)
#: Llama-3.2-1B's published configuration (1.24B parameters), random weights
LLAMA_32_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                   num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072,
                   tie_word_embeddings=True, rope_theta=500000.0, head_dim=64)


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def child(spec: dict) -> dict:
    import torch
    torch.set_num_threads(2)
    import forge_fe
    from forge_fe import zoo
    kw = LLAMA_32_1B if spec["config"] == "llama-3.2-1b" else {**SCALE, "num_hidden_layers": spec["layers"]}
    model, inputs = zoo.llama(seq=spec["seq"], **kw)
    params = sum(p.numel() for p in model.parameters())
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    import gc
    import forge_fe.compiler.pipeline, tvm_ext.partition, tvm_ext.passes  # noqa: F401  (imports are not compile time)
    gc.collect()
    built = _rss_kb("VmRSS")
    stage_peaks, peak = {}, 0

    def reset_peak():
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")             # reset VmHWM: peak RSS from here on

    stage_cpu, last_cpu = {}, [0.0]
    gc_cpu, gc_start, stage_gc, last_gc = [0.0], [0.0], {}, [0.0]

    def on_gc(phase, _info):         # CPU seconds spent in collections
        if phase == "start":
            gc_start[0] = time.process_time()
        else:
            gc_cpu[0] += time.process_time() - gc_start[0]

    def progress(stage, _seconds):   # the peak of each stage, then start counting the next one afresh
        nonlocal peak
        now = time.process_time()
        stage_cpu[stage], last_cpu[0] = now - last_cpu[0], now
        stage_gc[stage], last_gc[0] = gc_cpu[0] - last_gc[0], gc_cpu[0]
        hwm = _rss_kb("VmHWM")
        stage_peaks[stage] = (hwm - built) / 1024
        peak = max(peak, hwm)
        reset_peak()

    reset_peak()
    gc.callbacks.append(on_gc)
    t0, c0 = time.perf_counter(), time.process_time()
    last_cpu[0] = c0
    cm = forge_fe.compile(model, inputs, progress=progress)
    compile_s, compile_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    gc.callbacks.remove(on_gc)
    peak = max(peak, _rss_kb("VmHWM"))
    row = {"layers": kw["num_hidden_layers"], "params": params, "weights_mb": weights / 2**20,
           "built_mb": built / 1024, "peak_mb": peak / 1024, "compile_s": compile_s, "compile_cpu_s": compile_cpu_s,
           "extra_over_weights": (peak - built) * 1024 / weights, "stages": cm.report.timings,
           "stage_extra_mb": stage_peaks, "stage_cpu_s": stage_cpu,
           "gc_cpu_s": gc_cpu[0], "stage_gc_cpu_s": stage_gc}
    if spec["run"]:
        t0 = time.perf_counter()
        out = cm(*inputs)
        row["first_run_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        cm(*inputs)
        row["run_s"] = time.perf_counter() - t0
        with torch.no_grad():
            ref = model(*inputs)
        row["pcc"] = float(torch.corrcoef(torch.stack([ref.flatten(), out.flatten()]))[0, 1])
        row["run_peak_mb"] = _rss_kb("VmHWM") / 1024
    return row


def run_point(spec: dict, timeout: float) -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    p = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                       timeout=timeout, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"child {spec} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", default="4,8,16,32,64")
    ap.add_argument("--config", default="scale", choices=["scale", "llama-3.2-1b"])
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--run", action="store_true", help="also run the compiled model and check it against torch")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    points = [None] if args.config != "scale" else [int(n) for n in args.layers.split(",")]
    rows = []
    for n in points:
        rows.append(run_point({"config": args.config, "layers": n, "seq": args.seq, "run": args.run}, args.timeout))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    stages = list(rows[0]["stages"])
    print(f"\n{'layers':>6s} {'params':>8s} {'weights':>9s} {'wall':>8s} {'x prev':>7s} {'cpu':>8s} {'x prev':>7s} | {'built':>8s} "
          f"{'peak':>8s} {'extra/weights':>13s}" + (f" | {'run':>7s} {'pcc':>8s}" if args.run else ""))
    prev = None
    for r in rows:
        ratio = f"{r['compile_s'] / prev['compile_s']:7.2f}" if prev else f"{'-':>7s}"
        cpu_ratio = f"{r['compile_cpu_s'] / prev['compile_cpu_s']:7.2f}" if prev else f"{'-':>7s}"
        line = (f"{r['layers']:6d} {r['params'] / 1e6:7.0f}M {r['weights_mb']:7.0f}MB {r['compile_s']:7.1f}s {ratio} "
                f"{r['compile_cpu_s']:7.1f}s {cpu_ratio} | "
                f"{r['built_mb']:6.0f}MB {r['peak_mb']:6.0f}MB {r['extra_over_weights']:13.2f}")
        if args.run:
            line += f" | {r['run_s']:6.2f}s {r['pcc']:8.5f}"
        print(line)
        prev = r
    print("\nCPU seconds per stage:")
    print(f"{'layers':>6s} " + " ".join(f"{s[:12]:>12s}" for s in stages))
    for r in rows:
        print(f"{r['layers']:6d} " + " ".join(f"{r['stage_cpu_s'].get(s, 0):12.2f}" for s in stages))
    print("\nof which in the garbage collector (CPU seconds), and in all of compile:")
    print(f"{'layers':>6s} " + " ".join(f"{s[:12]:>12s}" for s in stages) + f" {'compile':>12s}")
    for r in rows:
        print(f"{r['layers']:6d} " + " ".join(f"{r['stage_gc_cpu_s'].get(s, 0):12.2f}" for s in stages)
              + f" {r['gc_cpu_s']:12.2f}")
    print("\npeak RSS during each stage minus the built model's RSS, MB:")
    print(f"{'layers':>6s} " + " ".join(f"{s[:12]:>12s}" for s in stages))
    for r in rows:
        print(f"{r['layers']:6d} " + " ".join(f"{r['stage_extra_mb'].get(s, 0):12.0f}" for s in stages))
    print("\nwall / cpu: compile wall-clock and process CPU time (CPU time is what load from other processes "
          "disturbs least);\nx prev: over the previous row's (goal <= 2.0 per doubling); extra/weights: "
          "(peak RSS during compile - RSS after building the model) / fp32 weight bytes (goal <= 0.5).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
