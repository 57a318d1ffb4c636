"""Output structure: flatten a framework's nested outputs and rebuild them from flat leaves.

The structure is stored as JSON in the binary, so a loaded model returns the same
nesting (tuple, list, dict, transformers ModelOutput ...) as the framework did.
Leaf order matches torch's pytree flattening, which torch.export uses.
"""
from __future__ import annotations

import importlib
import json


def _is_leaf(x) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def flatten(obj) -> tuple[list, dict]:
    leaves = []

    def go(x):
        if _is_leaf(x):
            leaves.append(x)
            return {"t": "leaf"}
        if isinstance(x, dict):   # includes transformers' ModelOutput (an OrderedDict)
            keys = [k for k in x.keys() if x[k] is not None]
            node = {"t": "dict", "keys": keys, "children": [go(x[k]) for k in keys]}
            if type(x) is not dict:
                node["cls"] = f"{type(x).__module__}.{type(x).__qualname__}"
            return node
        if isinstance(x, tuple) and hasattr(x, "_fields"):
            return {"t": "namedtuple", "cls": f"{type(x).__module__}.{type(x).__qualname__}",
                    "children": [go(v) for v in x]}
        if isinstance(x, (tuple, list)):
            return {"t": type(x).__name__, "children": [go(v) for v in x]}
        raise TypeError(f"unsupported output type {type(x).__name__}")

    return leaves, go(obj)


def _load_class(path: str):
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except Exception:
        return None


def unflatten(spec: dict, leaves: list):
    it = iter(leaves)

    def go(node):
        t = node["t"]
        if t == "leaf":
            return next(it)
        children = [go(c) for c in node["children"]]
        if t == "dict":
            d = dict(zip(node["keys"], children))
            cls = _load_class(node["cls"]) if "cls" in node else None
            return cls(**d) if cls is not None else d
        if t == "namedtuple":
            cls = _load_class(node["cls"])
            return cls(*children) if cls is not None else tuple(children)
        return tuple(children) if t == "tuple" else list(children)

    return go(spec)


def dumps(spec: dict) -> str:
    return json.dumps(spec)


def loads(text: str) -> dict:
    return json.loads(text) if text else {"t": "tuple", "children": []}
