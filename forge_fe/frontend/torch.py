"""PyTorch frontend: torch.export -> relax.frontend.torch.from_exported_program.

Weights stay function parameters (keep_params_as_input) so the Forge module can
name them after the torch parameters; the graph signature maps Relax's
`p_layer1_0_conv1_weight` back to `layer1.0.conv1.weight`.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from forge_fe.frontend import structure
from forge_fe.errors import FrontendError
from forge_fe.frontend.imported import ImportedModel, shape_only_array


def _as_tensors(sample_inputs) -> list[torch.Tensor]:
    if isinstance(sample_inputs, torch.Tensor):
        sample_inputs = [sample_inputs]
    out = []
    for i, x in enumerate(sample_inputs):
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(x)
        if not isinstance(x, torch.Tensor):
            raise FrontendError(f"sample input {i} is a {type(x).__name__}, expected a torch.Tensor or numpy array",
                                "pass the tensors positionally, in the order of model.forward's parameters "
                                "(e.g. [input_ids, attention_mask] for a transformers model)")
        out.append(x)
    return out


def _check_known_import_gaps(ep):
    """Refuse what TVM's importer would translate to a wrong result instead of failing."""
    for node in ep.graph.nodes:
        name = getattr(node.target, "__name__", str(node.target))
        if node.op == "call_function" and "max_pool2d_with_indices" in name:
            uses_indices = any(u.op == "call_function" and getattr(u.target, "__name__", "") == "getitem"
                               and u.args[1] == 1 for u in node.users)
            if uses_indices:
                raise FrontendError(
                    f"the model uses the indices of max_pool2d (node '{node.name}'), which TVM's PyTorch importer "
                    "replaces by zeros", "use max_pool2d without return_indices, or export the model to ONNX")


def _source_of(node) -> str:
    """'layer1.0.conv1' for an fx node made inside that submodule, else the fx node's name."""
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        path = list(stack.values())[-1][0]
        path = path.replace("L['self'].", "").replace("L['self']", "")
        path = path.replace("[", ".").replace("]", "").replace("'", "")
        if path:
            return path
    return node.name


def _import_with_sources(ep, shape_only: bool = False):
    """from_exported_program, also returning {relax var name: torch source} for generated names.
    shape_only (a meta-device model): buffers import as zeros, parameters as 1-element stand-ins
    (import_torch gives them their shapes back without memory)."""
    import tvm
    from tvm import relax
    from tvm_ext.frontend.exported_program import ExportedProgramImporter, drop_runtime_asserts
    param_ids = {id(p) for p in ep.parameters()} if shape_only else set()

    class SourceTrackingImporter(ExportedProgramImporter):
        sources: dict = {}

        @staticmethod
        def _convert_pytorch_tensor_to_tvm(tensor_value):
            if not tensor_value.is_meta:
                return ExportedProgramImporter._convert_pytorch_tensor_to_tvm(tensor_value)
            dtype = str(tensor_value.dtype).replace("torch.", "")
            shape = (1,) if id(tensor_value) in param_ids else tuple(tensor_value.shape)
            return tvm.runtime.tensor(np.zeros(shape, "float32" if dtype == "bfloat16" else dtype))

        def _index_put(self, node):
            # TVM mis-imports None (full-slice) and omitted trailing indices: see torch_index_put.py
            from forge_fe.frontend.torch_index_put import full_rank_indices
            args = self.retrieve_args(node)
            data, indices, values = args[0], list(args[1]), args[2]
            accumulate = args[3] if len(args) > 3 else node.kwargs.get("accumulate", False)
            given = [i for i in indices if i is not None]
            if not given or len(indices) == data.ty.ndim and len(given) == len(indices) \
                    or any(not str(i.ty.dtype).startswith(("int", "uint")) for i in given):
                return super()._index_put(node)      # all dims indexed, or boolean masks: TVM's rule
            full = full_rank_indices(self.block_builder, [int(d) for d in data.ty.shape.values], indices)
            return self.block_builder.emit(relax.op.index_put(data, relax.Tuple(full), values, bool(accumulate)))

        def _translate_fx_graph(self, graph_module, nodes, inputs_vars, custom_ops=None):
            out = super()._translate_fx_graph(graph_module, nodes, inputs_vars, custom_ops)
            for node, var in self.env.items():
                if node.op == "call_function" and isinstance(var, relax.Var):
                    self.sources[var.name] = _source_of(node)
            return out

    importer = SourceTrackingImporter()
    importer.sources = {}
    mod = importer.from_exported_program(drop_runtime_asserts(ep.run_decompositions()), True, False, False, None)
    # A converter emits helper bindings just before the var it returns: they share its source.
    sources, pending = {}, []
    for block in mod["main"].body.blocks:
        for b in block.bindings:
            pending.append(b.var.name)
            src = importer.sources.get(b.var.name)
            if src is not None:
                sources.update((n, src) for n in pending)
                pending = []
    return mod, sources


def import_torch(model: torch.nn.Module, sample_inputs, module_name=None, training: bool = False) -> ImportedModel:
    from tvm import relax

    inputs = _as_tensors(sample_inputs)
    shape_only = any(p.is_meta for p in model.parameters())
    if shape_only:
        return _import_shape_only(model, inputs, module_name)
    # Training captures train-mode semantics (batch norm on batch statistics).
    model = model.train(training)
    buffers = {k: v.clone() for k, v in model.named_buffers()} if training else {}
    with torch.no_grad():
        try:
            golden_out = model(*inputs)
            for k, v in model.named_buffers():   # the sample run must not move running statistics
                if k in buffers:
                    v.copy_(buffers[k])
        except Exception as exc:
            raise FrontendError(f"the model failed on its sample inputs: {exc}",
                                "check the sample inputs' shapes and dtypes against model.forward") from exc
        try:
            ep = torch.export.export(model, tuple(inputs))
        except Exception as exc:
            raise FrontendError(f"torch.export could not capture the model: {str(exc).splitlines()[0]}",
                                "the model must be exportable with torch.export (no data-dependent Python "
                                "control flow); see torch.export's error above") from exc
    _check_known_import_gaps(ep)
    return _imported(model, ep, *_to_relax(ep, copy_weights=training), golden_out, module_name)


def _to_relax(ep, shape_only: bool = False, copy_weights: bool = False):
    """Relax module, {weight var name: value} and {var name: torch source} of an ExportedProgram."""
    from tvm import relax
    try:
        with warnings.catch_warnings():
            # torch's own pytree deprecation, raised inside run_decompositions: not the user's to act on
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
            mod, sources = _import_with_sources(ep, shape_only)
    except Exception as exc:
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise FrontendError(f"TVM's PyTorch importer failed: {msg}",
                            "an unsupported aten op is named above; report it or rewrite that part of the model") from exc
    mod, params = relax.frontend.detach_params(mod)
    main_params = mod["main"].params
    values = {}
    for var, arr in zip(main_params[len(main_params) - len(params.get("main", [])):], params.get("main", [])):
        if shape_only:
            values[var.name] = shape_only_array(var.ty.shape.values, str(var.ty.dtype))
        else:
            # TVM's importer wraps the torch parameters zero-copy (DLPack); for inference keep it that
            # way: the weights live once, in the framework's own buffers, through codegen, lowering and
            # the binary. Training updates its parameters in place, so it gets its own copy.
            values[var.name] = arr.numpy() if copy_weights else torch.from_dlpack(arr).numpy()
    return mod, values, sources


def _import_shape_only(model, inputs, module_name) -> ImportedModel:
    """A model on the meta device: export it on meta inputs (no forward run: values do not exist),
    import shapes only. The result can be planned, never run."""
    meta_inputs = [x.to("meta") for x in inputs]
    try:
        ep = torch.export.export(model.eval(), tuple(meta_inputs))
    except Exception as exc:
        raise FrontendError(f"torch.export could not capture the meta-device model: {str(exc).splitlines()[0]}",
                            "the model must be exportable with torch.export") from exc
    out_node = next(n for n in ep.graph.nodes if n.op == "output")
    leaves = [a.meta["val"] if hasattr(a, "meta") else a for a in out_node.args[0]]
    golden_out = torch.utils._pytree.tree_unflatten(leaves, ep.call_spec.out_spec)
    imported = _imported(model, ep, *_to_relax(ep, shape_only=True), golden_out, module_name)
    imported.shape_only = True
    return imported


def _imported(model, ep, mod, values, sources, golden_out, module_name) -> ImportedModel:
    main_params = mod["main"].params
    weight_names = {}
    for spec in ep.graph_signature.input_specs:
        if spec.target is not None and spec.arg.name in values:
            weight_names[spec.arg.name] = spec.target
    user = [p for p in main_params if p.name not in values]
    input_specs = [(p.name, tuple(int(d) for d in p.ty.shape.values), str(p.ty.dtype)) for p in user]
    leaves, spec = structure.flatten(golden_out)

    return ImportedModel(
        framework="pytorch", name=module_name or type(model).__name__, mod=mod, params=values,
        weight_names=weight_names, input_specs=input_specs, output_structure=spec,
        output_dtypes=[str(t.dtype).replace("torch.", "") for t in leaves], torch_io=True, sources=sources,
        frozen={n for n, p in model.named_parameters() if not p.requires_grad})
