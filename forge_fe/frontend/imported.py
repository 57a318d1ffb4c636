"""ImportedModel: what every frontend returns (Relax module, weights, input specs, output nesting).

The bottom of :mod:`forge_fe.frontend`, beside :mod:`.structure`: each framework's module imports
it, and the dispatcher in ``forge_fe/frontend/__init__.py`` imports the framework modules.
"""
from __future__ import annotations

import gc
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ImportedModel:
    framework: str                              # pytorch | onnx | tensorflow | jax | forge
    name: str
    mod: object                                 # tvm.IRModule (None for forge modules)
    params: dict[str, np.ndarray]               # Relax weight param name -> value
    weight_names: dict[str, str]                # Relax weight param name -> framework name
    input_specs: list[tuple[str, tuple, str]]   # (name, shape, dtype) of user inputs, in call order
    output_structure: dict = field(default_factory=dict)
    input_structure: dict | None = None         # tree of structured inputs (structure.flatten_inputs)
    output_dtypes: list[str] = field(default_factory=list)
    torch_io: bool = False                      # torch in -> torch out
    forge_module: object = None                 # set when the model already is a ForgeModule
    sources: dict[str, str] = field(default_factory=dict)   # Relax var name -> framework op/module
    frozen: set[str] = field(default_factory=set)           # framework weights not to train (requires_grad=False)
    shape_only: bool = False                    # weights were on torch's meta device: shapes, no values


def shape_only_array(shape, dtype) -> np.ndarray:
    """A stand-in weight of the right shape and dtype that holds no memory (every stride 0): what a
    model on the meta device imports as, so it can be planned (forge_fe.mesh.plan) but not run."""
    return np.broadcast_to(np.zeros((), dtype), tuple(int(d) for d in shape))


def is_shape_only(a) -> bool:
    return isinstance(a, np.ndarray) and a.size > 1 and not any(a.strides)


_heap_lock = threading.Lock()
_heap_depth = 0          # imports under way (threads may import concurrently)
_heap_frozen = False     # whether the outermost one froze the heap (and so unfreezes it)


@contextmanager
def frozen_heap():
    """Keep the objects that exist before a compile out of the cyclic garbage collector while it runs
    (`run_pipeline` wraps every stage in it).

    An import (torch.export, its decomposition run, the Relax importer) allocates objects by the
    million, so CPython runs full collections during it, and each one walks every tracked object
    in the process: the framework's and the model's (~600k for torch + transformers) as well as the
    import's own. How many full collections run grows with the model, and so does what each one
    walks: gc time grew 3x per doubling of a Llama's layers. `gc.freeze()` moves the existing
    objects to the permanent generation, so collections walk only what the compile allocates
    (linear), and still free its cyclic garbage (memory stays bounded, unlike `gc.disable()`);
    `gc.unfreeze()` on exit gives them back to the oldest generation. Left alone if gc is
    disabled or the caller already froze objects of its own (unfreezing would release theirs)."""
    global _heap_depth, _heap_frozen
    with _heap_lock:
        if _heap_depth == 0:
            _heap_frozen = gc.isenabled() and gc.get_freeze_count() == 0
            if _heap_frozen:
                gc.freeze()
        _heap_depth += 1
    try:
        yield
    finally:
        with _heap_lock:
            _heap_depth -= 1
            if _heap_depth == 0 and _heap_frozen:
                gc.unfreeze()
                _heap_frozen = False
