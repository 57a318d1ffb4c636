"""Forge ops. Each op is an `OpDef` (see registry.py) and is called by generated modules as
``op.<name>(node_name, *inputs, **attrs)``."""
from forge_fe.op.registry import OPS, RELAX_TO_OP, NotOnDevice, OpDef, TensorType  # noqa: F401
from forge_fe.op import cache, eltwise, nn, reduce, tensor  # noqa: F401  (registers the ops)
from forge_fe.op import grad  # noqa: F401,E402  (gradient ops, after the ops they differentiate)
from forge_fe.op import collective  # noqa: F401,E402  (multi-chip: mesh_shard and collectives)


def __getattr__(name):
    # op.add, op.conv2d, op.slice ... resolve through the registry so names stay in one place.
    try:
        return OPS[name]
    except KeyError:
        raise AttributeError(f"forge_fe.op has no op '{name}'") from None
