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


def flatten(obj, is_leaf=_is_leaf) -> tuple[list, dict]:
    leaves = []

    def go(x):
        if is_leaf(x):
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


# ---- structured inputs (a keras model called with a dict, a JAX function of a pytree) ----

def _is_container(x) -> bool:
    return isinstance(x, (dict, list, tuple))


def flatten_inputs(args: list) -> tuple[list, dict | None]:
    """Positional inputs -> (leaves, tree); dicts, lists and tuples are structure, anything else a
    leaf (the frontend converts it). The tree is None when no argument is a container."""
    if not any(_is_container(a) for a in args):
        return list(args), None
    return flatten(list(args), is_leaf=lambda x: not _is_container(x))


def leaf_names(tree: dict) -> list[str]:
    """A name per leaf of a positional-inputs tree: its path of dict keys (and list positions under
    them), 'token_ids' or 'batch_y_0'; 'input_<i>[_<j>...]' when no dict is on the path."""
    names = []

    def go(node, path, keyed):
        if node["t"] == "leaf":
            names.append("_".join(path[1:]) if keyed else "input_" + "_".join(path))
            return
        for i, child in enumerate(node["children"]):
            key = str(node["keys"][i]) if node["t"] == "dict" else str(i)
            go(child, path + [key], keyed or node["t"] == "dict")

    go(tree, [], False)
    return names


def flatten_like(tree: dict, args) -> list:
    """The leaves of `args` in the order of `tree` (dict keys matched by name, in any order).
    Raises ValueError saying where `args` differs from the compiled structure."""
    leaves = []

    def go(node, x, where):
        t = node["t"]
        if t == "leaf":
            if _is_container(x):
                raise ValueError(f"{where} is a {type(x).__name__}, the model was compiled for a tensor there")
            leaves.append(x)
        elif t == "dict":
            if not isinstance(x, dict):
                raise ValueError(f"{where} is a {type(x).__name__}, the model was compiled for a dict "
                                 f"with keys {node['keys']}")
            missing = [k for k in node["keys"] if k not in x]
            extra = [k for k in x if k not in node["keys"]]
            if missing or extra:
                raise ValueError(f"{where} has keys {list(x)}, the model was compiled for {node['keys']}")
            for k, child in zip(node["keys"], node["children"]):
                go(child, x[k], f"{where}[{k!r}]")
        else:
            if not isinstance(x, (list, tuple)) or len(x) != len(node["children"]):
                n = len(x) if isinstance(x, (list, tuple)) else type(x).__name__
                if where == "inputs":
                    raise ValueError(f"the model takes {len(node['children'])} inputs, got {n}")
                raise ValueError(f"{where} has {n} items, the model was compiled for {len(node['children'])}")
            for i, (child, v) in enumerate(zip(node["children"], x)):
                go(child, v, f"{where}[{i}]" if where != "inputs" else f"input {i}")

    go(tree, list(args), "inputs")
    return leaves
