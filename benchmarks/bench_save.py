"""Saving and loading a compiled model's binary, side by side with safetensors on the same weights.

    python benchmarks/bench_save.py                  # GPT-2 small (124M parameters, ~0.5 GB fp32)
    python benchmarks/bench_save.py --layers 64      # the compile-scale Llama (hidden 1024): a 3 GB binary

In one process: compile the model, then time `cm.save()` and `forge_fe.binary.read()` of the .ttb
against `safetensors.numpy.save_file` / `load_file` of the same constant arrays (the format
weights usually travel in), and measure the peak RSS each adds over the RSS before it
(/proc/self/clear_refs resets the kernel's peak counter), as a multiple of the constants' bytes.
`forge_fe.load()` (read + build the executor) is timed too. Files go to a temporary directory;
both writers hand their bytes to the same page cache, so neither time includes the disk flush.
"""
from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from bench_compile_scale import _rss_kb  # noqa: E402


def measured(fn):
    """(seconds, extra peak RSS in bytes) of one call; its result is dropped afterwards."""
    gc.collect()
    before = _rss_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")                      # reset VmHWM: peak RSS from here on
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    peak = (_rss_kb("VmHWM") - before) * 1024
    del result
    return seconds, peak


def unique_constants(binary) -> dict[str, np.ndarray]:
    """Every constant array of the binary once (programs may share one), contiguous, by a unique name."""
    seen, out = set(), {}
    tables = [("plan", binary.constants)] + [(p.name, p.constants) for p in binary.programs]
    for owner, consts in tables:
        for key, value in consts.items():
            if id(value) not in seen:
                seen.add(id(value))
                out[f"{owner}/{key}"] = np.ascontiguousarray(value)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=0,
                    help="compile-scale Llama with this many layers instead of GPT-2 small")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import torch
    torch.set_num_threads(2)
    from safetensors.numpy import load_file, save_file

    import forge_fe
    from forge_fe import binary as ttb
    from forge_fe import zoo
    if args.layers:
        from bench_compile_scale import SCALE
        model, inputs = zoo.llama(seq=128, **{**SCALE, "num_hidden_layers": args.layers})
        name = f"llama hidden 1024, {args.layers} layers"
    else:
        model, inputs = zoo.gpt2(seq=128)
        name = "gpt2 (124M)"
    cm = forge_fe.compile(model, inputs)
    del model
    arrays = unique_constants(cm.binary)
    nbytes = sum(a.nbytes for a in arrays.values())
    print(f"{name}: {len(arrays)} constant arrays, {nbytes / 2**30:.2f} GiB")

    with tempfile.TemporaryDirectory() as tmp:
        ttb_path, st_path = os.path.join(tmp, "m.ttb"), os.path.join(tmp, "m.safetensors")
        # Each save writes a new file (cm.save writes a temporary and renames it): overwriting a file
        # in place reuses its page-cache pages and would time something else.
        calls = {("save", "ours"): lambda: cm.save(ttb_path),
                 ("save", "safetensors"): lambda: save_file(arrays, st_path),
                 ("read", "ours"): lambda: ttb.read(ttb_path),
                 ("read", "safetensors"): lambda: load_file(st_path),
                 ("load", "ours"): lambda: forge_fe.load(ttb_path)}
        # Interleaved rounds, best of each: both see the same machine state, and first calls pay
        # page faults that later ones reuse.
        best = {}
        for _ in range(args.rounds):
            for key, fn in calls.items():
                path = ttb_path if key[1] == "ours" else st_path
                if key[0] == "save" and os.path.exists(path):
                    os.unlink(path)
                t, peak = measured(fn)
                old_t, old_peak = best.get(key, (float("inf"), float("inf")))
                best[key] = (min(old_t, t), min(old_peak, peak))
        print(f"file: .ttb {os.path.getsize(ttb_path) / 2**30:.2f} GiB, "
              f".safetensors {os.path.getsize(st_path) / 2**30:.2f} GiB; best of {args.rounds} rounds")
    rows = [(what, *best[(what, "ours")], *best[(what, "safetensors")]) for what in ("save", "read")]
    load_t, load_peak = best[("load", "ours")]

    print(f"{'':6} {'ours s':>8} {'safetensors s':>14} {'ratio':>6} {'ours peak/bytes':>16} "
          f"{'safetensors peak/bytes':>23}")
    for what, t, peak, st_t, st_peak in rows:
        print(f"{what:6} {t:8.2f} {st_t:14.2f} {t / st_t:6.2f} {peak / nbytes:16.2f} {st_peak / nbytes:23.2f}")
    print(f"forge_fe.load (read + executor): {load_t:.2f} s, extra peak {load_peak / nbytes:.2f}x the constants")


if __name__ == "__main__":
    main()
