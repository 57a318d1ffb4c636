"""Elementwise comparison of a compiled model's outputs with the framework's, special values included.

Used by the special-value tests and the differential fuzzers. NaN positions must be the same,
infinities must be the same infinities, finite values must be allclose at the dtype's tolerance,
and (where asked) zeros must carry the same sign. Integers and booleans must be equal.
"""
from __future__ import annotations

import numpy as np

#: One of each float32 special value, plus ordinary ones around them: NaN, +-inf, -0.0, +0.0,
#: +-subnormals, +-1, +-3e38 (near overflow), and values where exp/log and friends turn.
SPECIAL_F32 = np.array([np.nan, np.inf, -np.inf, -0.0, 0.0, 1e-40, -1e-40, 1.0, -1.0, 3.0e38, -3.0e38,
                        0.5, -2.5, 89.0, -104.0, 2.0], np.float32)

#: (rtol, atol) by dtype: float32 results of the same math in another order (a GEMM's sum order,
#: an exp/erf implementation) differ by a few ulp; the atol absorbs cancellation near zero.
TOLERANCE = {"float32": (1e-4, 1e-5), "float16": (1e-2, 1e-3), "bfloat16": (2e-2, 1e-2), "float64": (1e-4, 1e-5)}


def as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def mismatch(ours, golden, *, rtol=None, atol=None, signed_zeros=False) -> str | None:
    """None if `ours` matches `golden`, else a message naming the first differing elements."""
    o, g = as_numpy(ours), as_numpy(golden)
    if o.shape != g.shape:
        return f"shape {list(o.shape)} != framework's {list(g.shape)}"
    if g.dtype.kind not in "fc":
        if o.dtype.kind in "fc" or not np.array_equal(o, g):
            bad = np.argwhere(o != g) if o.dtype.kind not in "fc" else []
            return f"values differ ({o.dtype} vs {g.dtype}) at {bad[:3].tolist()}: {o[tuple(bad[0])] if len(bad) else o} vs " \
                   f"{g[tuple(bad[0])] if len(bad) else g}"
        return None
    d_rtol, d_atol = TOLERANCE.get(g.dtype.name, TOLERANCE["float32"])
    rtol = d_rtol if rtol is None else rtol
    atol = d_atol if atol is None else atol
    of, gf = o.astype(np.float64), g.astype(np.float64)
    bad = np.isnan(of) != np.isnan(gf)
    inf = np.isinf(gf) | np.isinf(of)
    bad |= inf & ~np.isnan(gf) & ~np.isnan(of) & (of != gf)
    fin = np.isfinite(gf) & np.isfinite(of)
    with np.errstate(invalid="ignore", over="ignore"):
        bad |= fin & (np.abs(of - gf) > atol + rtol * np.abs(gf))
    if signed_zeros:
        bad |= (gf == 0) & (of == 0) & (np.signbit(gf) != np.signbit(of))
    if not bad.any():
        return None
    idx = np.argwhere(bad)
    first = [tuple(i) for i in idx[:3]]
    return (f"{int(bad.sum())} of {bad.size} elements differ, e.g. at {first}: ours "
            f"{[o[i].item() for i in first]} vs framework {[g[i].item() for i in first]}")
