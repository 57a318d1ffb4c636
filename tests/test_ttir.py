"""Every emitted TTIR file parses and verifies with an MLIR parser (jaxlib's bindings,
unregistered dialects allowed), and uses tt-mlir's current op and attribute spelling."""
import re

import pytest

import forge_fe
from forge_fe import zoo

ir = pytest.importorskip("jaxlib.mlir.ir")


def parse(text):
    from jaxlib.mlir._mlir_libs import _jax_mlir_ext
    ctx = ir.Context()
    registry = ir.DialectRegistry()
    _jax_mlir_ext.register_dialects(registry)   # so `func` is a known dialect
    ctx.append_dialect_registry(registry)
    ctx.allow_unregistered_dialects = True
    ctx.load_all_available_dialects()
    module = ir.Module.parse(text, ctx)
    assert module.operation.verify()
    return module


def ops_of(module):
    for func in module.body.operations:
        for op in func.regions[0].blocks[0].operations:
            yield func, op


# tt-mlir spelling (DESIGN.md) of the attributes we emit, as the parser prints them back.
SPELLING = {
    "ttir.conv2d": [r"stride = array<i32: \d+, \d+>", r"padding = array<i32: \d+, \d+, \d+, \d+>",
                    r"dilation = array<i32: \d+, \d+>", r"groups = \d+ : i32"],
    "ttir.max_pool2d": [r"kernel = array<i32: \d+, \d+>", r"ceil_mode = (true|false)"],
    "ttir.matmul": [r"transpose_a = false", r"transpose_b = (true|false)"],
    "ttir.linear": [r"transpose_b = (true|false)"],
    "ttir.reshape": [r"shape = \[(-?\d+ : i32(, )?)+\]"],
    "ttir.permute": [r"permutation = array<i64: [\d, ]+>"],
    "ttir.softmax": [r"dimension = -?\d+ : si32"],
    "ttir.mean": [r"dim_arg = \[(\d+ : i32(, )?)+\]", r"keep_dim = (true|false)"],
    "ttir.layer_norm": [r"normalized_shape = array<i64: \d+>", r"epsilon = [-\d.eE+]+ : f32"],
    "ttir.embedding": [],
    "ttir.slice_static": [r"begins = \[", r"ends = \[", r"step = \["],
}


@pytest.fixture(scope="module", params=["resnet_tiny", "bert_tiny"])
def compiled(request):
    model, ins = zoo.MODELS[request.param]()
    return forge_fe.compile(model, ins, compiler_cfg=forge_fe.CompilerConfig(cpu_fallback_ops={"softmax"}
                                                                            if request.param == "bert_tiny" else set()))


def test_emitted_ttir_parses_and_verifies(compiled):
    module = parse(compiled.ttir)
    names = {op.name for _, op in ops_of(module)}
    assert names and all(n.startswith("ttir.") or n == "func.return" for n in names), names


def test_attributes_follow_tt_mlir_spelling(compiled):
    module = parse(compiled.ttir)
    seen = set()
    for _, op in ops_of(module):
        if op.name in SPELLING:
            text = op.get_asm(print_generic_op_form=True)
            for pattern in SPELLING[op.name]:
                assert re.search(pattern, text), f"{op.name}: '{pattern}' not in {text}"
            seen.add(op.name)
    assert seen, "no checked op was emitted"


def test_arguments_carry_their_kind_and_ops_their_location(compiled):
    text = compiled.ttir
    assert "#ttcore.argument_type<input>" in text and "#ttcore.argument_type<parameter>" in text
    module = parse(text)
    locs = [str(op.location) for _, op in ops_of(module) if op.name.startswith("ttir.")]
    assert locs and all(l.startswith('loc("') for l in locs)


def test_ttir_in_binary_matches_program_ops(compiled):
    """The op list the runtime executes is the same op sequence as the TTIR text."""
    module = parse(compiled.ttir)
    text_ops = {}
    for func, op in ops_of(module):
        if op.name.startswith("ttir."):
            text_ops.setdefault(str(func.attributes["sym_name"]).strip('"'), []).append(op.name)
    for prog in compiled.binary.programs:
        assert [o.name for o in prog.ops] == text_ops.get(prog.name, []), prog.name
