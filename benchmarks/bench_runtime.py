"""Runtime ratios, side by side in one run: the emulated device (fp32 and bf16) vs onnxruntime.

For each model: forge_fe fp32 / onnxruntime (same model exported to ONNX opset 17, same inputs,
same intra-op threads), and forge_fe bf16 emulation (Float16_b activations and weights, HiFi4) /
forge_fe fp32. The three are timed in interleaved rounds (ort, fp32, bf16, ort, fp32, bf16 ...)
so that load from other processes hits all of them alike; each round is the median of `--iters`
calls, and the table shows the median over `--rounds` rounds of the per-round ratio, with the
spread (min-max) of that ratio across rounds.

    python benchmarks/bench_runtime.py [--models resnet50,bert_base,gpt2,llama] [--rounds 5] [--iters 5]
    python benchmarks/bench_runtime.py --profile        # also print forge_fe's per-op profile per model

The machine is noisy: read the ratios, not the absolute times. Targets: fp32 / ort <= 1.0,
bf16 / fp32 <= 1.5.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import time

import torch

import forge_fe
from forge_fe import zoo

os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: name -> builder of (model, inputs). gpt2 is GPT-2 small (124M), llama SmolLM-135M's configuration.
MODELS = {
    "resnet50": zoo.resnet50,
    "bert_base": zoo.bert_base,
    "gpt2": lambda: zoo.gpt2(seq=128),
    "llama": lambda: zoo.llama(seq=128),
}


def median_call(fn, iters):
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@contextlib.contextmanager
def stdout_to_devnull():
    """Silence file descriptor 1: torch's TorchScript exporter logs the whole TorchScript graph to
    it when an export fails (its setup_onnx_logging tests the function `_jit_is_onnx_log_enabled`
    itself, not its result, so the log is always on): thousands of lines before the fallback."""
    sys.stdout.flush()
    saved = os.dup(1)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        try:
            yield
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)


def ort_session(model, inputs, path, threads):
    import onnxruntime as ort
    names = [f"input{i}" for i in range(len(inputs))]
    try:       # the TorchScript exporter (what bench_spine uses) ...
        with stdout_to_devnull():
            torch.onnx.export(model, tuple(inputs), path, opset_version=17, dynamo=False, input_names=names)
    except Exception:   # ... lacks ops today's transformers masks use (aten::diff): the dynamo exporter has them
        torch.onnx.export(model, tuple(inputs), path, opset_version=18, dynamo=True, input_names=names)
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    feeds = {n: x.numpy() for n, x in zip(names, inputs)}
    return lambda: sess.run(None, feeds)


def bench(name, rounds, iters, threads, profile):
    model, inputs = MODELS[name]()
    fp32 = forge_fe.compile(model, inputs)
    bf16 = forge_fe.compile(model, inputs, compiler_cfg=forge_fe.CompilerConfig(
        default_df_override=forge_fe.DataFormat.Float16_b))
    with tempfile.TemporaryDirectory() as d:
        ort_run = ort_session(model, inputs, os.path.join(d, f"{name}.onnx"), threads)
    runners = {"ort": ort_run, "fp32": lambda: fp32(*inputs), "bf16": lambda: bf16(*inputs)}
    for fn in runners.values():
        fn()                                   # warm-up: const-eval, weight packing, ORT arena
    times = {k: [] for k in runners}
    for _ in range(rounds):
        for k, fn in runners.items():
            times[k].append(median_call(fn, iters))
    row = {"model": name, **{f"{k}_ms": statistics.median(v) * 1e3 for k, v in times.items()}}
    for ratio, (a, b) in {"fp32_ort": ("fp32", "ort"), "bf16_fp32": ("bf16", "fp32")}.items():
        per_round = [x / y for x, y in zip(times[a], times[b])]
        row[ratio] = statistics.median(per_round)
        row[ratio + "_spread"] = (min(per_round), max(per_round))
    if profile:
        from forge_fe.device.profile import Profiler
        for label, cm in (("fp32", fp32), ("bf16", bf16)):
            prof = cm.executor.profiler = Profiler()
            for _ in range(iters):
                prof.run(cm, *inputs)
            cm.executor.profiler = None
            print(f"\n== {name} {label}\n{prof.table(top_nodes=5)}")
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for m in args.models.split(","):
        rows.append(bench(m, args.rounds, args.iters, args.threads, args.profile))
        print(f"done {m}", file=sys.stderr, flush=True)
    print(f"\n{'model':10s} {'onnxruntime':>12s} {'forge fp32':>11s} {'fp32/ort':>9s} {'(spread)':>13s} | "
          f"{'forge bf16':>11s} {'bf16/fp32':>10s} {'(spread)':>13s}")
    for r in rows:
        s1, s2 = r["fp32_ort_spread"], r["bf16_fp32_spread"]
        print(f"{r['model']:10s} {r['ort_ms']:10.1f}ms {r['fp32_ms']:9.1f}ms {r['fp32_ort']:9.2f} "
              f"({s1[0]:.2f}-{s1[1]:.2f}) | {r['bf16_ms']:9.1f}ms {r['bf16_fp32']:10.2f} ({s2[0]:.2f}-{s2[1]:.2f})")
    print(f"\n{args.threads} intra-op threads for both; medians of {args.rounds} interleaved rounds of "
          f"{args.iters} calls. Targets: fp32/ort <= 1.0, bf16/fp32 <= 1.5.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
