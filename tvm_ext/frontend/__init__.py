"""Framework frontends: a framework model -> (Relax IRModule, weights).

Each frontend lives in its own submodule and is imported on first use, so
importing this package pulls in neither onnx nor torch/tensorflow/jax.

    from tvm_ext.frontend import from_onnx
"""

from __future__ import annotations

import importlib

# public name -> submodule that defines it (add other frontends here)
_EXPORTS = {
    "from_onnx": "onnx",
    "from_stablehlo": "stablehlo",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
