"""Framework frontends: turn a user's model into Relax + weights + a golden function.

`import_model` dispatches on the model object; each frontend returns an
`ImportedModel`. Frameworks are imported lazily, so a user without TensorFlow
never pays for it.
"""
from __future__ import annotations

import os

from forge_fe.errors import FrontendError
from forge_fe.frontend.imported import ImportedModel, is_shape_only, shape_only_array

__all__ = ["ImportedModel", "import_model", "is_shape_only", "shape_only_array"]


def import_model(model, sample_inputs, module_name=None, training: bool = False) -> ImportedModel:
    from forge_fe.graph.module import ForgeModule
    if isinstance(model, ForgeModule):
        from forge_fe.frontend.forge import import_forge
        return import_forge(model, sample_inputs, module_name)
    torch_mod = _maybe_torch_module(model)
    if torch_mod is not None:
        from forge_fe.frontend.torch import import_torch
        return import_torch(model, sample_inputs, module_name, training=training)
    if isinstance(model, (str, os.PathLike)) and str(model).endswith(".onnx") or type(model).__name__ == "ModelProto":
        from forge_fe.frontend.onnx import import_onnx
        return import_onnx(model, sample_inputs, module_name)
    if _is_tensorflow(model):
        from forge_fe.frontend.tf import import_tf
        return import_tf(model, sample_inputs, module_name)
    if isinstance(model, (str, os.PathLike)):
        raise FrontendError(f"don't know how to import '{model}'",
                            "pass an .onnx file, a TensorFlow SavedModel directory, a torch.nn.Module, "
                            "an onnx.ModelProto, a keras.Model or a JAX-traceable callable")
    if callable(model):
        # Anything else callable is taken as a JAX function of its sample inputs (Flax modules
        # bound to their variables included); jax.export says clearly when it isn't traceable.
        from forge_fe.frontend.jax import import_jax
        return import_jax(model, sample_inputs, module_name)
    raise FrontendError(f"unsupported model object of type {type(model).__module__}.{type(model).__name__}",
                        "forge_fe.compile takes a torch.nn.Module, an onnx.ModelProto or .onnx path, a keras.Model, "
                        "tf.Module, tf.function or SavedModel directory, a JAX-traceable callable, "
                        "or a forge_fe ForgeModule")


def _maybe_torch_module(model):
    import sys
    if "torch" not in sys.modules:
        return None
    import torch
    return model if isinstance(model, torch.nn.Module) else None


def _is_tensorflow(model) -> bool:
    """keras.Model, tf.Module, a tf.function, or a SavedModel directory; checked without importing TF."""
    if isinstance(model, (str, os.PathLike)):
        return os.path.isdir(model) and os.path.exists(os.path.join(model, "saved_model.pb"))
    # Subclassed keras models and tf.Modules live in user modules: look at the base classes.
    return any((c.__module__ or "").split(".")[0] in ("keras", "tensorflow", "tf_keras")
               for c in type(model).__mro__)
