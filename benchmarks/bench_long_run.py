"""Long runs: RSS over 10,000 calls of one compiled model, and 4 threads against serial calls.

    python benchmarks/bench_long_run.py [--calls 10000] [--threads 4]

The model has a const-eval program, fused oneDNN convolutions, a TVM CPU segment (softmax
forced to the CPU) and a save/load round trip, so every cache the runtime keeps is exercised.
RSS is read from /proc/self/status every 500 calls; growth is measured after a warm-up of 500
calls (allocator pools, oneDNN primitive caches and the weight reorders settle there). Prints
the RSS series, the growth per 1,000 calls, and the time per call serial vs threaded (a ratio
measured side by side in this run, alternating; the machine is shared, so read ratios, not times).
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


def rss_mb() -> tuple[float, float]:
    """(anonymous RSS, total RSS) in MB. Anonymous memory (heap, tensors) is what a leak grows;
    file-backed pages (the mapped torch/TVM libraries) come and go with the shared machine's
    page cache, so total RSS alone can even fall."""
    fields = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("RssAnon", "VmRSS"):
                fields[key] = int(value.split()[0]) / 1024
    return fields["RssAnon"], fields["VmRSS"]


def timed(fn, calls: int) -> float:
    t0 = time.perf_counter()
    fn(calls)
    return (time.perf_counter() - t0) / calls


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
    for i in range(1, args.calls + 1):
        out = cm(x)
        if i % 500 == 0:
            series.append((i,) + rss_mb())
    assert torch.equal(out, want)
    (i0, anon0, rss0), (i1, anon1, rss1) = series[0], series[-1]
    print("calls   anon RSS MB   RSS MB")
    for i, anon, rss in series:
        print(f"{i:6d}  {anon:11.1f}  {rss:7.1f}")
    print(f"anonymous RSS after the 500-call warm-up {anon0:.1f} MB, after {i1} calls {anon1:.1f} MB: "
          f"{anon1 - anon0:+.1f} MB ({(anon1 - anon0) / (i1 - i0) * 1000:+.3f} MB per 1,000 calls); "
          f"total RSS {rss0:.1f} -> {rss1:.1f} MB")

    bad = []

    def serial(n):
        for _ in range(n):
            if not torch.equal(cm(x), want):
                bad.append(1)

    def threaded(n):
        threads = [threading.Thread(target=serial, args=(n // args.threads,)) for _ in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def serial_one_thread(n):          # torch's intra-op pool off: see docs/reliability.md
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            serial(n)
        finally:
            torch.set_num_threads(threads)

    n = 100 * args.threads
    rounds = [(timed(serial, n), timed(serial_one_thread, n), timed(threaded, n)) for _ in range(3)]
    s_ms, s1_ms, t_ms = (sorted(r[k] for r in rounds)[1] * 1e3 for k in range(3))   # medians, alternated
    print(f"{args.threads} threads, {3 * n} calls: {len(bad)} outputs differ from the serial result")
    print(f"median time per call: serial {s_ms:.2f} ms ({torch.get_num_threads()} torch threads), serial "
          f"{s1_ms:.2f} ms (1 torch thread), {args.threads} Python threads {t_ms:.2f} ms "
          f"(ratio threaded / serial 1-thread {t_ms / s1_ms:.2f})")


if __name__ == "__main__":
    main()
