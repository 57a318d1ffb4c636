"""GuardIntegerDivision: integer division in a CPU segment runs through forge_fe's checked kernel.

TVM compiles integer `divide` / `floor_divide` / `mod` / `floor_mod` to the host's division
instruction, which kills the whole process with SIGFPE on a zero divisor or INT_MIN / -1.
torch and onnxruntime refuse a zero divisor with an error, so these calls become
`call_pure_packed("forge_fe.integer_division.<rounding>", x, y)`, a host function
(forge_fe.device.cpu_builtins) that raises a clean error for zero and wraps INT_MIN / -1.
Float division is left alone: IEEE defines it everywhere.
"""
from __future__ import annotations

from tvm import relax

from tvm_ext.passes.rewrite import constant_folding_pass

#: Relax op -> rounding of forge_fe.device.numerics.integer_division (TVM: divide truncates, mod is C's %)
ROUNDING = {"relax.divide": "trunc", "relax.floor_divide": "floor", "relax.mod": "fmod",
            "relax.floor_mod": "remainder"}

HOST_FUNCTION = "forge_fe.integer_division."


def _is_integer(expr) -> bool:
    ty = expr.ty
    return isinstance(ty, relax.TensorType) and str(ty.dtype).startswith(("int", "uint"))


def checked_division(call, lookup):
    rounding = ROUNDING.get(call.op.name)
    if rounding is None or not all(_is_integer(a) for a in call.args[:2]):
        return None
    return relax.call_pure_packed(HOST_FUNCTION + rounding, call.args[0], call.args[1],
                                  ty_args=call.ty)


GuardIntegerDivision = constant_folding_pass("GuardIntegerDivision", checked_division)
