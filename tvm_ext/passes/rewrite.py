"""Make a named Relax module pass from a function that folds or rewrites one op call.

`fold(call, lookup) -> numpy array | relax.Expr | None`: return the call's value (an
array becomes a constant) or an expression to replace it by (nested calls are normalized
into bindings), or None to keep it. `lookup(var)` gives the expression a variable is bound
to (so a rule can see through `lv = const`). Calls are visited after their arguments,
so chains fold in one pass. The folding passes and the rewrites (SplitToSlices,
DeviceForms) are all made this way.
"""
from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator


def constant_folding_pass(name: str, fold):
    @mutator
    class _Folder(PyExprMutator):
        def __init__(self, mod):
            super().__init__(mod)
            self.mod = mod

        def visit_call_(self, call):
            call = super().visit_call_(call)
            if isinstance(call.op, tvm.ir.Op):
                value = fold(call, self.lookup_binding)
                if isinstance(value, relax.Expr):
                    return value
                if value is not None:
                    return relax.const(value, str(value.dtype))
            return call

        def run(self):
            for gv, func in self.mod.functions.items():
                if isinstance(func, relax.Function):
                    self.builder_.update_func(gv, self.visit_expr(func))
            return self.builder_.get()

    @tvm.transform.module_pass(opt_level=0, name=name)
    class _Pass:
        def transform_module(self, mod, ctx):
            return _Folder(mod).run()

    _Pass.__name__ = _Pass.__qualname__ = name
    return _Pass


def static_shape(expr) -> list[int] | None:
    """The static shape of a tensor-typed expression, or None (unknown rank or a symbolic dim)."""
    ty = expr.ty
    if not isinstance(ty, relax.TensorType) or ty.shape is None:
        return None
    try:
        return [int(d) for d in ty.shape.values]
    except TypeError:
        return None
