"""ForgeModule: the base class of generated Forge modules.

A ForgeModule runs two ways with the same `forward`:
* eagerly on torch tensors: every `op.X(...)` call evaluates the op's golden rule;
* traced: `trace(...)` calls `forward` with graph input nodes, and every op call
  records a node, producing the initial Forge graph.
"""
from __future__ import annotations

import numpy as np
import torch

from forge_fe.graph.graph import PARAMETER, CONSTANT, Graph


class ForgeModule:
    def __init__(self, name: str):
        self.name = name
        self._weights: dict[str, np.ndarray | None] = {}   # parameters and constants by name
        self._kinds: dict[str, str] = {}
        self._specs: dict[str, tuple] = {}
        self._graph: Graph | None = None                  # set while tracing
        self._nodes: dict = {}
        self._torch_cache: dict[str, torch.Tensor] = {}

    # ---- declaration (generated __init__) ----
    def add_parameter(self, name: str, shape, dtype: str):
        self._declare(name, shape, dtype, PARAMETER)

    def add_constant(self, name: str, shape, dtype: str):
        self._declare(name, shape, dtype, CONSTANT)

    def _declare(self, name, shape, dtype, kind):
        self._weights[name] = None
        self._kinds[name] = kind
        self._specs[name] = (tuple(shape), dtype)

    # ---- weights ----
    def set_weights(self, weights: dict[str, np.ndarray], prefix: str = ""):
        for name in self._weights:
            key = prefix + name
            if key not in weights:
                raise KeyError(f"{self.name}: weight '{key}' missing from the weights file")
            value = np.asarray(weights[key])
            shape, dtype = self._specs[name]
            if tuple(value.shape) != shape:
                raise ValueError(f"{self.name}: weight '{name}' has shape {value.shape}, expected {shape}")
            self._weights[name] = value
        self._torch_cache.clear()

    def load_weights(self, path: str, prefix: str | None = None):
        from safetensors.numpy import load_file
        self.set_weights(load_file(path), self.name + "." if prefix is None else prefix)

    def named_weights(self):
        return dict(self._weights)

    # ---- use in forward ----
    def get_parameter(self, name: str):
        return self._get(name)

    def get_constant(self, name: str):
        return self._get(name)

    def _get(self, name):
        if self._graph is not None:
            node = self._nodes.get(name)
            if node is None:
                value = self._weights[name]
                if value is None:
                    raise RuntimeError(f"{self.name}: weight '{name}' was never loaded")
                node = self._graph.add_const(name, value, kind=self._kinds[name], meta={"framework_name": name})
                self._nodes[name] = node
            return node
        t = self._torch_cache.get(name)
        if t is None:
            value = self._weights[name]
            if value is None:
                raise RuntimeError(f"{self.name}: weight '{name}' was never loaded (call load_weights)")
            t = torch.from_numpy(np.asarray(value, order="C"))
            self._torch_cache[name] = t
        return t

    def forward(self, *inputs):
        raise NotImplementedError

    def __call__(self, *inputs):
        inputs = [torch.from_numpy(np.asarray(x)) if isinstance(x, np.ndarray) else x for x in inputs]
        return self.forward(*inputs)

    def trace(self, input_specs: list[tuple[str, tuple, str]]) -> Graph:
        """Build the initial Forge graph; input_specs = [(name, shape, dtype)]."""
        graph = Graph(self.name)
        self._graph, self._nodes = graph, {}
        try:
            ins = [graph.add_input(n, s, d) for n, s, d in input_specs]
            out = self.forward(*ins)
        finally:
            self._graph = None
        graph.outputs = list(out) if isinstance(out, (tuple, list)) else [out]
        for o in graph.outputs:
            if o.graph is not graph:
                raise RuntimeError(f"{self.name}: forward returned a value that is not a graph node")
        return graph
