"""Corrupted binaries: every mutation of a saved .ttb is refused with a forge_fe error, or (where the
damage cannot matter) runs with the original outputs. Nothing crashes, hangs or answers wrongly.

The mutations (tests/binary_mutations.py) run in worker processes, in a few batches, so a crash
is caught and attributed to its mutation instead of taking pytest down. The default run tries
500 mutations; `pytest -m fuzz` tries FORGE_FE_FUZZ_MUTATIONS (default 5000) fresh ones.
"""
import collections
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn as nn

import binary_mutations
import forge_fe

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "binary_mutation_worker.py")


class Model(nn.Module):
    """Const-eval (conv + batch norm folded), a device program and a CPU segment (softmax forced)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        y = torch.relu(self.bn(self.conv(x))).mean((2, 3))
        return torch.softmax(self.fc(y), -1) * 2.0, y


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    model = Model().eval()
    x = torch.randn(1, 3, 6, 6)
    cm = forge_fe.compile(model, [x], compiler_cfg=forge_fe.CompilerConfig(cpu_fallback_ops={"softmax"}))
    assert any(s.kind == "cpu" for s in cm.binary.plan) and any(p.private for p in cm.binary.programs)
    d = tmp_path_factory.mktemp("corruption")
    cm.save(str(d / "model.ttb"))
    np.savez(d / "inputs.npz", x.numpy())
    np.savez(d / "outputs.npz", *[o.numpy() for o in cm(x)])
    return d


def run_mutations(d, todo: list[dict], batches: int = 2) -> list[dict]:
    """Apply every mutation in worker processes; a worker that dies is restarted after its mutation."""
    (d / "mutations.json").write_text(json.dumps(todo))
    results = {}
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([HERE, os.environ.get("PYTHONPATH", "")]))
    start = 0
    while start < len(todo):
        proc = subprocess.run([sys.executable, WORKER, str(d), str(start)], capture_output=True, text=True,
                              env=env, timeout=1800)
        last = None
        for line in proc.stdout.splitlines():
            r = json.loads(line)
            last = r["i"]
            if r["outcome"] != "started":
                results[r["i"]] = r
        if proc.returncode != 0:          # died: the mutation it had started is a crash
            assert last is not None, f"worker failed before any mutation:\n{proc.stderr[-2000:]}"
            results[last] = {"i": last, "outcome": "crash", "detail": f"exit {proc.returncode}"}
            start = last + 1
        else:
            start = len(todo)
    assert sorted(results) == list(range(len(todo)))
    return [dict(results[i], mutation=todo[i]) for i in range(len(todo))]


def judge(results: list[dict]) -> collections.Counter:
    """Counts by (kind, outcome); fails on any crash, hang, raw exception or changed output.

    A re-checksummed flip may change an output: it can rewrite a value (an attribute, a shape)
    as validly as the compiler would, and the checksum is what guards values. Past the checksum,
    forge_fe must still never crash, hang or throw anything but its own errors."""
    counts = collections.Counter((r["mutation"]["kind"], r["outcome"]) for r in results)
    bad = [r for r in results if r["outcome"] not in ("error", "same")
           and not (r["mutation"]["kind"] == "reflip" and r["outcome"] == "different")]
    assert not bad, "\n".join(f"{r['mutation']}: {r['outcome']} {r['detail']}" for r in bad[:10])
    return counts


def test_500_mutations_of_a_saved_binary_are_refused_cleanly(saved):
    data = (saved / "model.ttb").read_bytes()
    todo = binary_mutations.mutations(data, total=500, n_reflips=100)
    assert len(todo) == 500
    counts = judge(run_mutations(saved, todo))
    print(dict(counts))
    # Truncations, wrong sizes and swapped programs must all be refused; a flip of a byte nothing
    # reads (alignment padding, the compiler-version text) may load and give the same outputs.
    for kind in ("truncate", "size", "swap"):
        assert counts[(kind, "same")] == 0, f"a {kind} mutation went unnoticed"
    assert counts[("flip", "error")] > 0.9 * sum(v for (k, _), v in counts.items() if k == "flip")


@pytest.mark.fuzz
@pytest.mark.timeout(0)
def test_many_mutations_of_a_saved_binary(saved):
    data = (saved / "model.ttb").read_bytes()
    n = int(os.environ.get("FORGE_FE_FUZZ_MUTATIONS", "5000"))
    todo = binary_mutations.mutations(data, total=n, n_reflips=n // 4, seed=int.from_bytes(os.urandom(4)))
    print(dict(judge(run_mutations(saved, todo, batches=8))))
