"""Long runs: RSS over 10,000 calls of one compiled model, and 4 threads against serial calls.

    python benchmarks/bench_long_run.py [--calls 10000] [--threads 4]

The model has a const-eval program, fused oneDNN convolutions, a TVM CPU segment (softmax
forced to the CPU) and a save/load round trip, so every cache the runtime keeps is exercised.
RSS is read from /proc/self/statm every 500 calls; growth is measured after a warm-up of 500
calls (allocator pools, oneDNN primitive caches and the weight reorders settle there). Prints
the RSS series, the growth per 1,000 calls, and the time per call serial vs threaded (a ratio
measured side by side in this run; the machine is shared, so read ratios, not times).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time

import torch
import torch.nn as nn

import forge_fe


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x)))
        y = torch.relu(self.conv2(y) + y).mean((2, 3))
        return torch.softmax(self.fc(y), -1)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    torch.manual_seed(0)
    model = Model().eval()
    x = torch.randn(1, 3, 32, 32)
    cm = forge_fe.compile(model, [x], compiler_cfg=forge_fe.CompilerConfig(cpu_fallback_ops={"softmax"}))
    with tempfile.TemporaryDirectory() as d:
        cm.save(os.path.join(d, "m.ttb"))
        cm = forge_fe.load(os.path.join(d, "m.ttb"))
    print(f"segments: {' -> '.join(cm.report.segments)}")

    want = cm(x)
    series = []
    t0 = time.perf_counter()
    for i in range(1, args.calls + 1):
        out = cm(x)
        if i % 500 == 0:
            series.append((i, rss_mb()))
    serial_s = (time.perf_counter() - t0) / args.calls
    assert torch.equal(out, want)
    base = series[0][1]
    growth = (series[-1][1] - base) / max(1, (series[-1][0] - series[0][0])) * 1000
    print("calls   RSS MB")
    for i, mb in series:
        print(f"{i:6d}  {mb:8.1f}")
    print(f"RSS after warm-up (500 calls) {base:.1f} MB, after {series[-1][0]} calls {series[-1][1]:.1f} MB: "
          f"{series[-1][1] - base:+.1f} MB in total, {growth:+.3f} MB per 1,000 calls")

    per_thread = args.calls // (10 * args.threads)
    bad = []

    def calls():
        for _ in range(per_thread):
            if not torch.equal(cm(x), want):
                bad.append(1)
    threads = [threading.Thread(target=calls) for _ in range(args.threads)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    threaded_s = (time.perf_counter() - t0) / (per_thread * args.threads)
    print(f"{args.threads} threads x {per_thread} calls: {len(bad)} outputs differ from the serial call; "
          f"time per call {threaded_s * 1e3:.2f} ms vs serial {serial_s * 1e3:.2f} ms "
          f"(ratio {threaded_s / serial_s:.2f})")


if __name__ == "__main__":
    main()
