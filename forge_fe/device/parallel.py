"""Intra-op parallelism of the emulated device: a large op is split into independent pieces that the
calling thread and a few worker threads claim one at a time.

Why not torch's own threads: each torch call with more than one intra-op thread is an OpenMP
parallel region with a static split and a barrier at its end, so when the OS deschedules one of its
threads (any shared machine) the region waits a whole scheduler time slice for it. Measured here at
load ~8 on 2 cores: a 128x576x576 GEMM took 1.1 ms on one thread and 32 ms on two, onnxruntime's
1.4 ms. onnxruntime avoids it because its calling thread keeps claiming work items while a worker
is late. This pool does the same: pieces are claimed from a shared counter, so a descheduled worker
costs at most the piece it holds. While a device program runs (`intra_op`), torch itself runs on one
thread; the pieces are what the device does too (an op's output tiles spread over its cores).

The pool pays off only on an oversubscribed machine: on a quiet one torch's own threads parallelize
every op (the pool splits only large GEMMs and convs, and the rest runs on one thread), and measured
side by side on 2 quiet cores a ResNet-50 call took 68.6 ms with torch's threads and 107.5 ms with
the pool (BERT-base 237 vs 257 ms). So it is off by default; `FORGE_FE_DEVICE_POOL=1` turns it on
for machines that run more threads than cores.

Kernels ask for the pool with `current()` (None: run whole).
"""
from __future__ import annotations

import os
import queue
import threading
from contextlib import contextmanager

import torch

#: FORGE_FE_DEVICE_POOL=1: device programs split large ops over the pool instead of torch's threads
ENABLED = os.environ.get("FORGE_FE_DEVICE_POOL", "0") == "1"

_local = threading.local()
_pools: dict[int, "SplitPool"] = {}
_pools_lock = threading.Lock()


class _Job:
    __slots__ = ("fn", "n", "next", "left", "lock", "done", "error")

    def __init__(self, fn, n):
        self.fn, self.n, self.next, self.left = fn, n, 0, n
        self.lock, self.done, self.error = threading.Lock(), threading.Event(), None

    def work(self):
        """Claim and run pieces until none is left."""
        while True:
            with self.lock:
                i = self.next
                self.next += 1
            if i >= self.n:
                return
            try:
                self.fn(i)
            except BaseException as exc:       # re-raised in the caller
                self.error = exc
            with self.lock:
                self.left -= 1
                if self.left == 0:
                    self.done.set()


class SplitPool:
    """`threads - 1` daemon workers plus the caller; `run(n, fn)` calls fn(0..n-1), each once."""

    def __init__(self, threads: int):
        self.threads = threads
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        started = threading.Barrier(threads)
        for k in range(threads - 1):
            threading.Thread(target=self._worker, args=(started,), name=f"forge_fe-device-{k}", daemon=True).start()
        started.wait()    # the workers' set_num_threads(1) is done before the caller sets its own count

    def _worker(self, started):
        torch.set_num_threads(1)   # this thread's torch calls are single-threaded (thread-local for OpenMP/MKL)
        started.wait()
        while True:
            self._jobs.get().work()

    def run(self, n: int, fn):
        if n <= 1:
            for i in range(n):
                fn(i)
            return
        job = _Job(fn, n)
        for _ in range(min(self.threads - 1, n - 1)):
            self._jobs.put(job)
        job.work()
        job.done.wait()
        if job.error is not None:
            raise job.error


def current() -> SplitPool | None:
    """The pool of the device program running on this thread, or None (one thread: run ops whole)."""
    return getattr(_local, "pool", None)


@contextmanager
def intra_op():
    """Run a device program: with the pool enabled, torch's intra-op thread count goes to the pool
    (created once per thread count, its workers kept) and torch itself runs on one thread until the
    program returns; otherwise torch keeps its threads."""
    threads = torch.get_num_threads()
    if not ENABLED or threads <= 1 or current() is not None:
        yield
        return
    with _pools_lock:
        pool = _pools.get(threads)
        if pool is None:
            pool = _pools[threads] = SplitPool(threads)
    torch.set_num_threads(1)
    _local.pool = pool
    try:
        yield
    finally:
        _local.pool = None
        torch.set_num_threads(threads)
