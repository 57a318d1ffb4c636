"""Cost of device-numerics emulation: bf16 (and Bfp8_b weights, LoFi) vs the fp32 emulator.

    python benchmarks/bench_numerics.py [--models resnet50,bert_base] [--iters 10]

Prints the emulated-device latency of each configuration and its ratio to fp32, measured
side by side in one run (target: bf16 <= 2x fp32). The machine is noisy: read the ratios.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

import forge_fe
from forge_fe import CompilerConfig, DataFormat as DF, MathFidelity as MF, zoo

CONFIGS = [
    ("fp32", {}),
    ("bf16 HiFi4", dict(default_df_override=DF.Float16_b)),
    ("bf16 + Bfp8_b weights", dict(default_df_override=DF.Float16_b, df_overrides={"weights": DF.Bfp8_b})),
    ("bf16 LoFi", dict(default_df_override=DF.Float16_b, math_fidelity=MF.LoFi)),
]


def median_ms(cm, inputs, iters):
    cm(*inputs)
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        cm(*inputs)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet50,bert_base")
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(f"{'model':10s} {'configuration':24s} {'run ms':>9s} {'vs fp32':>8s}")
    for name in args.models.split(","):
        model, inputs = zoo.MODELS[name]()
        base = None
        for label, kw in CONFIGS:
            ms = median_ms(forge_fe.compile(model, inputs, compiler_cfg=CompilerConfig(**kw)), inputs, args.iters)
            base = base or ms
            print(f"{name:10s} {label:24s} {ms:9.1f} {ms / base:8.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
