"""StableHLO calls, tuples, custom calls and control flow: func.call (inlined), composite bodies,
tuples, the custom calls that are identities or top_k, and while (unrolled when its trip count is
static), if and case."""
from __future__ import annotations

import numpy as np
from tvm import relax

from .common import MAX_UNROLL, R, Unsupported, _ir, int_attr, registrar

#: StableHLO op name -> converter, merged by :mod:`.registry`
CONVERTERS: dict = {}
converter = registrar(CONVERTERS)


@converter("func.call", "call")
def call(cv, op, ins):
    return cv.call_function(_ir().FlatSymbolRefAttr(op.attributes["callee"]).value, ins)


@converter("stablehlo.optimization_barrier")
def identity_all(cv, op, ins):
    return list(ins)


@converter("stablehlo.tuple")
def make_tuple(cv, op, ins):
    return [ins]


@converter("stablehlo.get_tuple_element")
def get_tuple_element(cv, op, ins):
    return ins[0][int_attr(op, "index")]


#: custom_call targets that only annotate their operand
_IDENTITY_TARGETS = {"Sharding", "SPMDFullToShardShape", "SPMDShardToFullShape", "annotate_device_placement",
                     "LayoutConstraint", "X64Combine"}


@converter("stablehlo.custom_call")
def custom_call(cv, op, ins):
    target = _ir().StringAttr(op.attributes["call_target_name"]).value
    if target in _IDENTITY_TARGETS and len(ins) == 1:
        return ins[0]
    if target == "shape_assertion":
        return []
    if target in ("mhlo.topk", "TopK"):
        return _top_k(cv, op, ins)
    raise Unsupported(f"custom_call target '{target}' has no converter")


def _top_k(cv, op, ins):
    (shape, _), (_, idx_dtype) = cv.result_type(op, 0), cv.result_type(op, 1)
    k = shape[-1]
    out = cv.emit(R.topk(ins[0], k, axis=-1, ret_type="both", largest=True, dtype=idx_dtype), "topk")
    return [cv.emit(relax.TupleGetItem(out, 0)), cv.emit(relax.TupleGetItem(out, 1))]


@converter("stablehlo.while")
def while_(cv, op, ins):
    """Unrolled: the trip count must follow from constants (lax.scan / fori_loop with static bounds)."""
    cond_block, body_block = op.regions[0].blocks[0], op.regions[1].blocks[0]
    carried = list(ins)
    for _ in range(MAX_UNROLL + 1):
        (pred,) = cv.convert_block(cond_block, carried)
        value = cv.known(pred)
        if value is None:
            raise Unsupported("a while loop whose trip count depends on run-time values "
                              "(use lax.scan or fori_loop with static bounds)")
        if not bool(value.reshape(())):
            return carried
        carried = cv.convert_block(body_block, carried)
    raise Unsupported(f"a while loop of more than {MAX_UNROLL} iterations (unrolled loops are capped)")


@converter("stablehlo.if")
def if_(cv, op, ins):
    """lax.cond: the taken branch for a constant predicate; else both branches and a select
    (StableHLO is pure, so computing the untaken branch only costs time)."""
    pred = cv.known(ins[0])
    if pred is not None:
        return cv.convert_block(op.regions[0 if bool(pred.reshape(())) else 1].blocks[0], [])
    taken = cv.convert_block(op.regions[0].blocks[0], [])
    other = cv.convert_block(op.regions[1].blocks[0], [])
    return [cv.emit(R.where(ins[0], a, b), "cond") for a, b in zip(taken, other)]


@converter("stablehlo.case")
def case(cv, op, ins):
    """lax.switch: out-of-range indices take the last branch, as in StableHLO."""
    n = len(op.regions)
    index = cv.known(ins[0])
    if index is not None:
        i = int(index.reshape(()))
        return cv.convert_block(op.regions[i if 0 <= i < n else n - 1].blocks[0], [])
    results = cv.convert_block(op.regions[n - 1].blocks[0], [])
    idt = cv.dtype_of(ins[0])
    for i in reversed(range(n - 1)):
        branch = cv.convert_block(op.regions[i].blocks[0], [])
        hit = cv.emit(R.equal(ins[0], relax.const(np.asarray(i, idt))))
        results = [cv.emit(R.where(hit, a, b), "switch") for a, b in zip(branch, results)]
    return results
