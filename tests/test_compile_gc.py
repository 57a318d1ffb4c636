"""Compile time against model size (issue 14): the compile keeps the objects that existed before
it out of the garbage collector's full collections (frozen_heap), and gives them back after.
Checked by structure, never by timing."""
import gc
import threading

import pytest
import torch
from torch import nn

import forge_fe
from forge_fe.compiler import pipeline
from forge_fe.frontend.imported import frozen_heap


@pytest.fixture(autouse=True)
def _no_foreign_freeze():
    assert gc.get_freeze_count() == 0 and gc.isenabled()
    yield
    gc.unfreeze()
    gc.enable()


def test_compile_runs_on_a_frozen_heap_and_gives_it_back(monkeypatch):
    seen = []
    real = pipeline.import_model

    def spy(*a, **k):
        seen.append(gc.get_freeze_count())
        return real(*a, **k)

    monkeypatch.setattr(pipeline, "import_model", spy)
    model, x = nn.Sequential(nn.Linear(16, 8), nn.ReLU()).eval(), torch.randn(2, 16)
    stages = []
    cm = forge_fe.compile(model, [x], progress=lambda name, _s: stages.append((name, gc.get_freeze_count())))
    assert len(seen) == 1 and seen[0] > 0                      # the model, its inputs, torch: frozen
    assert stages[-1][0] == "binary" and all(n > 0 for _, n in stages)          # every later stage too
    assert gc.get_freeze_count() == 0 and gc.isenabled()       # and given back
    assert torch.allclose(cm(x), model(x), atol=1e-2)


def test_frozen_heap_unfreezes_when_the_import_fails():
    with pytest.raises(RuntimeError):
        with frozen_heap():
            assert gc.get_freeze_count() > 0
            raise RuntimeError("import failed")
    assert gc.get_freeze_count() == 0 and gc.isenabled()


def test_frozen_heap_leaves_a_callers_own_freeze_and_disabled_gc_alone():
    keep = [object()]
    gc.freeze()
    frozen = gc.get_freeze_count()
    with frozen_heap():
        keep.append([object()])
    assert gc.get_freeze_count() == frozen                     # not unfrozen, nothing added
    gc.unfreeze()
    gc.disable()
    with frozen_heap():
        assert gc.get_freeze_count() == 0
    assert not gc.isenabled()


def test_concurrent_imports_unfreeze_once_the_last_one_ends():
    inside, release = threading.Barrier(2), threading.Event()
    counts = []

    def worker(wait):
        with frozen_heap():
            inside.wait()
            if wait:
                release.wait()
            counts.append(gc.get_freeze_count())

    t_long = threading.Thread(target=worker, args=(True,))
    t_short = threading.Thread(target=worker, args=(False,))
    t_long.start()
    t_short.start()
    t_short.join()
    assert gc.get_freeze_count() > 0                           # the long import still runs frozen
    release.set()
    t_long.join()
    assert all(c > 0 for c in counts) and gc.get_freeze_count() == 0
