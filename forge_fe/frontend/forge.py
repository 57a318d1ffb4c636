"""ForgeModule frontend: a (generated) Forge module is compiled from its initial graph on.

The Relax stages have nothing to do: the module already is device code, and its
weights are loaded. Input names come from `forward`'s signature.
"""
from __future__ import annotations

import inspect

import numpy as np
import torch

from forge_fe.frontend import structure
from forge_fe.errors import FrontendError
from forge_fe.frontend.imported import ImportedModel


def import_forge(module, sample_inputs, module_name=None) -> ImportedModel:
    inputs = [torch.from_numpy(np.asarray(x)) if not isinstance(x, torch.Tensor) else x for x in sample_inputs]
    names = list(inspect.signature(module.forward).parameters)
    if len(names) != len(inputs):
        raise FrontendError(f"{module.name}.forward takes {len(names)} inputs ({', '.join(names)}), "
                            f"got {len(inputs)} sample inputs")
    with torch.no_grad():
        out = module(*inputs)
    leaves, spec = structure.flatten(out)
    return ImportedModel(
        framework="forge", name=module_name or module.name, mod=None, params={}, weight_names={},
        input_specs=[(n, tuple(x.shape), str(x.dtype).replace("torch.", "")) for n, x in zip(names, inputs)],
        output_structure=spec,
        output_dtypes=[str(t.dtype).replace("torch.", "") for t in leaves],
        torch_io=isinstance(sample_inputs[0], torch.Tensor) if sample_inputs else True, forge_module=module)
