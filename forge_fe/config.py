"""User-facing compile settings: stages, data formats, math fidelity, CompilerConfig."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field


class CompileDepth(enum.IntEnum):
    """Stop after this stage. Values follow pipeline order (see forge_fe.compiler.pipeline.STAGES)."""
    IMPORT = 1
    RELAX_PASSES = 2
    PARTITION = 3
    GENERATE_FORGE_MODULE = 4
    INITIAL_GRAPH = 5
    POST_INITIAL_GRAPH = 6
    CONSTEVAL = 7
    AUTOGRAD = 8
    POST_AUTOGRAD = 9
    PRE_LOWERING = 10
    GRAPH_SPLIT = 11
    SHARD = 12          # multi-chip: shardings, collectives, per-chip memory plan (no-op on one chip)
    LOWER_TO_TTIR = 13
    BINARY = 14
    FULL = 15


class DataFormat(enum.Enum):
    """Device storage formats (DESIGN.md, hardware numbers)."""
    Float32 = "Float32"
    Float16_b = "Float16_b"   # bfloat16: 1 sign, 8 exponent, 7 mantissa bits
    Bfp8_b = "Bfp8_b"         # block float: 16 values share an 8-bit exponent, 7-bit mantissas
    Bfp4_b = "Bfp4_b"         # same with 3-bit mantissas

    @property
    def ttir_elem(self) -> str:
        # Block float is a tile encoding on the device; TTIR carries it as bf16.
        return "f32" if self is DataFormat.Float32 else "bf16"


class MathFidelity(enum.IntEnum):
    """Number of mantissa-slice phases the matrix engine runs (1..4)."""
    LoFi = 1
    HiFi2 = 2
    HiFi3 = 3
    HiFi4 = 4


@dataclass
class CompilerConfig:
    compile_depth: CompileDepth = CompileDepth.FULL
    default_df_override: DataFormat | None = None
    math_fidelity: MathFidelity = MathFidelity.HiFi4
    fp32_dest_acc_en: bool = True
    # Per-tensor data formats, most specific first: a node name ("layer1_0_conv1_conv2d"),
    # an op type ("softmax", "matmul"), or "weights" (parameters, constants and what
    # const-eval computes from them). Unlisted float tensors use default_df_override.
    df_overrides: dict = field(default_factory=dict)
    cpu_fallback_ops: set[str] = field(default_factory=set)
    enable_consteval: bool = True
    dump_dir: str | None = None
    arch: str = "wormhole_b0"
    # Multi-chip (docs/mesh.md): a system ("n300", "t3k", "galaxy", "p150", "p300", ...) or a shape
    # ("1x8"); or mesh_shape=(rows, cols) on `arch`. The system decides the arch.
    mesh: str | None = None
    mesh_shape: tuple | None = None
    # Explicit shardings, globs on framework parameter/input names -> one entry per dim: "x"/"y"/None.
    # None: the automatic (Megatron tensor-parallel + data-parallel) rule.
    shard_specs: dict | None = None

    def __post_init__(self):
        # Accept forgiving spellings but keep one canonical form.
        self.cpu_fallback_ops = {op.lower() for op in self.cpu_fallback_ops}
        self.df_overrides = {k: v if isinstance(v, DataFormat) else DataFormat[v] for k, v in self.df_overrides.items()}
        if isinstance(self.default_df_override, str):
            self.default_df_override = DataFormat[self.default_df_override]
        if isinstance(self.math_fidelity, str):
            self.math_fidelity = MathFidelity[self.math_fidelity]
        if not isinstance(self.compile_depth, CompileDepth):
            self.compile_depth = CompileDepth[str(self.compile_depth).upper()]
        mesh = self.mesh_description()          # validates the mesh early, with a clear error
        if mesh is not None:
            self.arch = mesh.arch

    def mesh_description(self):
        """The forge_fe.mesh.Mesh this config compiles for, or None for one chip without a mesh."""
        from forge_fe.systems import resolve_mesh
        return resolve_mesh(self.mesh, self.mesh_shape, self.arch)
