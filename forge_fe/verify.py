"""Golden comparison: run the framework model and the compiled model, compare every output.

Metrics per output: PCC (Pearson correlation of the flattened values: 1.0 means
same shape of values up to scale/offset) and allclose (|a - b| <= atol + rtol*|b|
elementwise). Both must pass; on failure the worst output is named.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forge_fe.frontend import structure
from forge_fe.errors import VerificationError


def pcc(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.size == 0:
        return 1.0
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        same = np.array_equal(np.isnan(a), np.isnan(b)) and np.array_equal(a[~np.isfinite(a)], b[~np.isfinite(b)])
        if not same:
            return float("nan")
        fin = np.isfinite(a)
        a, b = a[fin], b[fin]
    if np.allclose(a, b, rtol=0, atol=0):
        return 1.0
    sa, sb = a.std(), b.std()
    if sa == 0 or sb == 0:
        return 1.0 if np.allclose(a, b) else 0.0
    return float(np.corrcoef(a, b)[0, 1])


@dataclass
class OutputCheck:
    index: int
    shape: tuple
    pcc: float
    max_abs_err: float
    allclose: bool
    pcc_min: float

    @property
    def ok(self) -> bool:
        return self.allclose and self.pcc >= self.pcc_min   # NaN PCC compares False: not ok


def _to_numpy(x):
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def golden_outputs(model, inputs):
    import os
    import sys
    if "torch" in sys.modules:
        import torch
        if isinstance(model, torch.nn.Module):
            with torch.no_grad():
                return model(*[torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x for x in inputs])
    from forge_fe.frontend import _is_tensorflow
    if _is_tensorflow(model):      # before the ONNX branch: a SavedModel is a path too
        from forge_fe.frontend.tf import golden_outputs as tf_golden_outputs
        return tf_golden_outputs(model, inputs)
    if isinstance(model, (str, os.PathLike)) or type(model).__name__ == "ModelProto":
        import onnxruntime as ort
        data = model if isinstance(model, (str, os.PathLike)) else model.SerializeToString()
        sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        return sess.run(None, {n: _to_numpy(x) for n, x in zip(names, inputs)})
    from forge_fe.graph.module import ForgeModule
    if isinstance(model, ForgeModule):
        return model(*inputs)
    if callable(model):            # any other callable is a JAX function, as in forge_fe.compile
        from forge_fe.frontend.jax import golden_outputs as jax_golden_outputs
        return jax_golden_outputs(model, inputs)
    raise VerificationError(f"cannot compute golden outputs for a {type(model).__name__}")


def verify(inputs, model, cm, pcc_min: float = 0.99, rtol: float = 1e-2, atol: float = 1e-3) -> list[OutputCheck]:
    """Compare cm(*inputs) against model(*inputs); raise VerificationError naming the worst output."""
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    golden, _ = structure.flatten(golden_outputs(model, inputs))
    ours, _ = structure.flatten(cm(*inputs))
    if len(golden) != len(ours):
        raise VerificationError(f"framework returned {len(golden)} outputs, compiled model {len(ours)}")
    checks = []
    for i, (g, o) in enumerate(zip(golden, ours)):
        g, o = _to_numpy(g), _to_numpy(o)
        if g.shape != o.shape:
            raise VerificationError(f"output {i}: shape {list(o.shape)} differs from the framework's {list(g.shape)}")
        gf, of = g.astype(np.float64), o.astype(np.float64)
        err = float(np.max(np.abs(gf - of))) if g.size else 0.0
        checks.append(OutputCheck(i, g.shape, pcc(gf, of), err,
                                  bool(np.allclose(of, gf, rtol=rtol, atol=atol, equal_nan=True)), pcc_min))
    bad = [c for c in checks if not c.ok]
    if bad:
        worst = min(bad, key=lambda c: (c.pcc if c.pcc == c.pcc else -2.0))
        raise VerificationError(
            f"output {worst.index} (shape {list(worst.shape)}) differs from the framework: PCC {worst.pcc:.6f} "
            f"(need >= {pcc_min}), max |err| {worst.max_abs_err:.3g}, allclose(rtol={rtol}, atol={atol}) "
            f"{'passed' if worst.allclose else 'failed'}; {len(bad)} of {len(checks)} outputs failed",
            "inspect the per-stage artifacts with CompilerConfig(dump_dir=...), or force suspect ops to the CPU "
            "with cpu_fallback_ops to bisect" + "".join(
                f"\n  device numerics that differ on purpose: {note}"
                for note in getattr(getattr(cm, "report", None), "numerics_notes", [])))
    return checks
