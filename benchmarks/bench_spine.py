"""Side-by-side ratios for the spine (issue: compile time and runtime).

(a) compile: forge_fe.compile(model) vs tvm.compile(the same imported Relax module, llvm).
    Both sides start from the model object; TVM's side is given forge_fe's own import
    (torch.export + Relax import), timed separately, so the ratio compares like with like.
(b) runtime: the compiled model on the emulated device vs onnxruntime (2 threads), same
    model exported to ONNX, same inputs. Medians of repeated runs.

    python benchmarks/bench_spine.py [--models resnet50,bert_base] [--iters 10] [--skip-tvm-run]

The machine is noisy: read the ratios, not the absolute times.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import torch

import forge_fe
from forge_fe import zoo


def median_time(fn, iters):
    fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def export_onnx(model, inputs, path):
    names = [f"input{i}" for i in range(len(inputs))]
    torch.onnx.export(model, tuple(inputs), path, opset_version=17, dynamo=False, input_names=names)
    return names


def bench(name, iters, run_tvm):
    import onnxruntime as ort
    import tvm
    from tvm import relax
    model, inputs = zoo.MODELS[name]()
    row = {"model": name}

    t0 = time.perf_counter()
    cm = forge_fe.compile(model, inputs)
    row["forge_compile_s"] = time.perf_counter() - t0
    row["forge_import_s"] = cm.report.timings["import"]

    # TVM baseline: the module forge_fe imported, weights bound, compiled for the host.
    imp = cm.context.imported
    mod = relax.transform.BindParams("main", {k: tvm.runtime.tensor(v) for k, v in imp.params.items()})(imp.mod)
    t0 = time.perf_counter()
    ex = tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"}))
    row["tvm_compile_s"] = time.perf_counter() - t0 + row["forge_import_s"]

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, f"{name}.onnx")
        names = export_onnx(model, inputs, path)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 2
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        feeds = {n: x.numpy() for n, x in zip(names, inputs)}
        row["ort_ms"] = median_time(lambda: sess.run(None, feeds), iters) * 1e3
    row["forge_ms"] = median_time(lambda: cm(*inputs), iters) * 1e3
    if run_tvm:
        vm = relax.VirtualMachine(ex, tvm.cpu())
        args = [tvm.runtime.tensor(x.numpy()) for x in inputs]
        row["tvm_ms"] = median_time(lambda: vm["main"](*args), max(1, iters // 5)) * 1e3
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet50,bert_base")
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("--skip-tvm-run", action="store_true", help="don't time TVM's (slow, untuned) executable")
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = [bench(m, args.iters, not args.skip_tvm_run) for m in args.models.split(",")]
    print(f"\n{'model':10s} {'forge compile':>14s} {'tvm.compile':>12s} {'ratio':>6s} | "
          f"{'forge run':>10s} {'onnxruntime':>12s} {'ratio':>6s} {'tvm run':>10s}")
    for r in rows:
        tvm_run = f"{r['tvm_ms']:8.1f}ms" if "tvm_ms" in r else "-"
        print(f"{r['model']:10s} {r['forge_compile_s']:13.2f}s {r['tvm_compile_s']:11.2f}s "
              f"{r['forge_compile_s'] / r['tvm_compile_s']:6.2f} | {r['forge_ms']:8.1f}ms {r['ort_ms']:10.1f}ms "
              f"{r['forge_ms'] / r['ort_ms']:6.2f} {tvm_run:>10s}")
    print("\ncompile ratio = forge_fe.compile / (forge_fe's import + tvm.compile llvm); "
          "run ratio = emulated device / onnxruntime (2 threads). Targets: compile <= 1.0, run <= 1.5.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
