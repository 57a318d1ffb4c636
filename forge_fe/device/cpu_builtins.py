"""Host functions that TVM-compiled CPU segments call by name (registered on import).

`forge_fe.integer_division.<rounding>`: the checked integer division that
tvm_ext.passes.guard_integer_division puts in place of TVM's own (which traps with
SIGFPE on a zero divisor); the same rule as the device's `ttir.div` kernel.
"""
from __future__ import annotations

import numpy as np
import torch
import tvm

from forge_fe.device.numerics import integer_division

ROUNDINGS = ("trunc", "floor", "fmod", "remainder")


#: rounding -> the Relax op it replaces (for the error message)
RELAX_OP = {"trunc": "divide", "floor": "floor_divide", "fmod": "mod", "remainder": "floor_mod"}


#: unsigned integers (torch has no remainder for them; nothing to wrap): numpy, after the zero check
UNSIGNED = {"trunc": np.floor_divide, "floor": np.floor_divide, "fmod": np.fmod, "remainder": np.remainder}


def _register(rounding: str):
    def run(x, y):
        x, y = x.numpy(), y.numpy()
        try:
            if x.dtype.kind == "u":
                if not y.all():
                    raise ZeroDivisionError("integer division by zero")
                out = UNSIGNED[rounding](x, y)
            else:
                out = integer_division(torch.from_numpy(x), torch.from_numpy(y), rounding).numpy()
        except ZeroDivisionError:
            raise ZeroDivisionError(f"integer division by zero in {RELAX_OP[rounding]} (torch and onnxruntime "
                                    "refuse it too)") from None
        return tvm.runtime.tensor(np.ascontiguousarray(out))
    tvm.register_global_func(f"forge_fe.integer_division.{rounding}", run, override=True)


for _r in ROUNDINGS:
    _register(_r)
