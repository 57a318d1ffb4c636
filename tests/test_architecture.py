"""The package map (docs/architecture.md, "Packages and their import direction") holds for the code.

`LAYERS` is the map, bottom first; it is the only copy (the doc's table is rendered from it and
checked here). A module may import its own unit and any unit of a lower layer; units of one
layer are independent of each other. Imports inside functions count like top-level ones: a lazy
import is still a dependency, it only defers the cost. Inside each package (one directory) the
modules' imports form no cycle. Plain AST reading: nothing is imported, the test takes a second.
"""
from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("forge_fe", "tvm_ext")
GENERATED = (os.path.join("forge_fe", "binary", "fb"),)   # flatc output (forge_fe/binary/README.md)

#: (layer, units, what they are), bottom first. A unit is a package or a module; `forge_fe`
#: and `tvm_ext` as units mean only their __init__.py.
LAYERS = [
    ("base", ["forge_fe.errors", "forge_fe.version", "tvm_ext"], "errors, the version"),
    ("systems", ["forge_fe.systems"], "Tenstorrent systems as meshes of chips: shapes, ethernet links, topology"),
    ("config", ["forge_fe.config"], "CompilerConfig and its enums"),
    ("numerics", ["forge_fe.device.numerics"], "the device's number formats and integer rules (op golden rules use them)"),
    ("binary format", ["forge_fe.binary"], "FlatBuffers schema, generated code, Binary model, reader/writer"),
    ("TTIR emitter", ["forge_fe.ttir"], "SSA names, types, attribute spelling; op records for the binary"),
    ("op registry", ["forge_fe.op"], "one OpDef per op: shape, golden, lowering, Relax rule, backward"),
    ("graph, device", ["forge_fe.graph", "forge_fe.device"],
     "the Forge graph and ForgeModule; the emulated device (one chip or a mesh): executor, kernels, "
     "numerics, perf and link models"),
    ("passes", ["tvm_ext.passes", "tvm_ext.partition", "forge_fe.passes"],
     "Relax passes, the device/CPU partitioner, Forge graph passes (the mesh sharding stage among them)"),
    ("framework importers", ["tvm_ext.frontend"], "ONNX (TVM's importer + our converters) and StableHLO -> Relax"),
    ("frontends", ["forge_fe.frontend"], "a user's model -> ImportedModel; output nesting (structure)"),
    ("compiler", ["forge_fe.compiler"], "the pipeline's stages, codegen, TTIR lowering, binary building, report"),
    ("mesh", ["forge_fe.mesh"], "multi-chip public API: forge_fe.mesh.plan (planning over the pipeline), Mesh"),
    ("public modules", ["forge_fe.compiled", "forge_fe.verify", "forge_fe.optim", "forge_fe.zoo"],
     "compile/CompiledModel, verify, optimizers, reference models"),
    ("generation", ["forge_fe.generation"], "compile_lm: prefill/decode programs over a static KV cache"),
    ("public API", ["forge_fe"], "forge_fe/__init__.py: the public names, load"),
    ("tools", ["forge_fe.tools", "forge_fe.onnx_backend"], "forge-fe CLI, model matrix, ONNX backend API"),
]

#: (importer, imported) module pairs that go against the map, allowed until they are fixed. The
#: test fails when one of these disappears too, so the list only shrinks.
KNOWN_UPWARD: set = set()

LAYER_OF = {unit: i for i, (_, units, _) in enumerate(LAYERS) for unit in units}

_ONNX_FAMILIES = ["creation", "elementwise", "movement", "normalization", "tensor", "spatial", "attention",
                  "linear_attention", "rnn", "scan", "signal", "quant"]
_STABLEHLO_FAMILIES = ["elementwise", "movement", "linalg", "reduction", "indexing", "control"]
#: package -> its modules' layers, bottom first (same rule as LAYERS: down only, one layer's modules
#: independent, so no converter module imports another one)
INNER_LAYERS = {
    "tvm_ext.frontend.onnx": [["common"], _ONNX_FAMILIES, ["registry"], ["patch", "fold_static"], ["importer"], ["__init__"]],
    "tvm_ext.frontend.stablehlo": [["common"], _STABLEHLO_FAMILIES, ["registry"], ["importer"], ["__init__"]],
    "forge_fe.op": [["registry"], ["layout", "cache", "collective"], ["eltwise", "grad"], ["tensor"], ["reduce"], ["nn"], ["__init__"]],
}


def _modules() -> dict[str, str]:
    """module name -> file path, for every module of forge_fe and tvm_ext (generated code left out)."""
    found = {}
    for pkg in PACKAGES:
        for folder, dirs, files in os.walk(os.path.join(ROOT, pkg)):
            rel = os.path.relpath(folder, ROOT)
            if rel.startswith(GENERATED) or "__pycache__" in rel:
                dirs.clear()
                continue
            for f in files:
                if f.endswith(".py"):
                    parts = rel.split(os.sep) + ([] if f == "__init__.py" else [f[:-3]])
                    found[".".join(parts)] = os.path.join(folder, f)
    return found


MODULES = _modules()


def _imports(name: str, path: str) -> list[tuple[str, int]]:
    """(imported forge_fe/tvm_ext module, line) for every import in the file, function-level ones too."""
    is_pkg = path.endswith("__init__.py")
    here = name if is_pkg else name.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = here.split(".")[: len(here.split(".")) - node.level + 1]
                base = ".".join(pkg + ([node.module] if node.module else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub if sub in MODULES else base, node.lineno))
    return [(m, line) for m, line in out if m.split(".")[0] in PACKAGES]


def _unit(module: str) -> str | None:
    if module in PACKAGES:
        return module
    best = None
    for unit in LAYER_OF:
        if unit not in PACKAGES and (module == unit or module.startswith(unit + ".")):
            best = unit if best is None or len(unit) > len(best) else best
    return best


def test_every_module_is_on_the_map():
    missing = sorted(m for m in MODULES if _unit(m) is None)
    assert not missing, f"modules outside tests/test_architecture.py's LAYERS (add their unit): {missing}"


def test_imports_go_down_the_map():
    upward, known = [], set()
    for name, path in sorted(MODULES.items()):
        unit = _unit(name)
        for target, line in _imports(name, path):
            other = _unit(target)
            if other is None or other == unit:
                continue
            if (name, target) in KNOWN_UPWARD:
                known.add((name, target))
                continue
            if LAYER_OF[other] >= LAYER_OF[unit]:
                upward.append(f"{os.path.relpath(path, ROOT)}:{line}: {unit} ({LAYERS[LAYER_OF[unit]][0]}) imports "
                              f"{target} ({LAYERS[LAYER_OF[other]][0]})")
    assert not upward, "imports against the package map (docs/architecture.md):\n" + "\n".join(upward)
    assert known == KNOWN_UPWARD, f"fixed, remove from KNOWN_UPWARD: {sorted(KNOWN_UPWARD - known)}"


def test_imports_go_down_inside_the_layered_packages():
    upward = []
    for pkg, layers in INNER_LAYERS.items():
        rank = {(pkg if m == "__init__" else f"{pkg}.{m}"): i for i, mods in enumerate(layers) for m in mods}
        members = {m for m in MODULES if m == pkg or m.rpartition(".")[0] == pkg}
        assert members == set(rank), f"{pkg}: INNER_LAYERS lists {sorted(rank)}, the package has {sorted(members)}"
        for name in sorted(members):
            for target, line in _imports(name, MODULES[name]):
                if target in rank and target != name and rank[target] >= rank[name]:
                    upward.append(f"{os.path.relpath(MODULES[name], ROOT)}:{line}: {name} imports {target}")
    assert not upward, "imports against INNER_LAYERS:\n" + "\n".join(upward)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph as a path, or None (depth-first search)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_cycles_inside_a_package():
    folder_of = {m: os.path.dirname(p) for m, p in MODULES.items()}
    cycles = []
    for folder in sorted(set(folder_of.values())):
        members = {m for m, f in folder_of.items() if f == folder}
        graph = {m: {t for t, _ in _imports(m, MODULES[m]) if t in members and t != m} for m in members}
        found = _cycle(graph)
        if found:
            cycles.append(f"{os.path.relpath(folder, ROOT)}: " + " -> ".join(found))
    assert not cycles, "import cycles between modules of one package:\n" + "\n".join(cycles)


def render_map() -> str:
    """The package map as the markdown table docs/architecture.md shows (top layer first)."""
    rows = ["| layer | units | what |", "|---|---|---|"]
    for name, units, what in reversed(LAYERS):
        rows.append(f"| {name} | {', '.join(f'`{u}`' for u in units)} | {what} |")
    return "\n".join(rows) + "\n"


def test_architecture_doc_shows_this_map():
    doc = open(os.path.join(ROOT, "docs", "architecture.md")).read()
    assert render_map() in doc, ("docs/architecture.md's package table differs from tests/test_architecture.py's "
                                 "LAYERS; paste the output of `python tests/test_architecture.py`:\n" + render_map())


def test_the_check_sees_an_upward_import(tmp_path):
    """The AST reading finds a function-level import and the map ranks it as upward."""
    path = tmp_path / "probe.py"
    path.write_text("def f():\n    from forge_fe.compiler.pipeline import STAGES\n")
    [(target, line)] = _imports("forge_fe.op.probe", str(path))
    assert (target, line) == ("forge_fe.compiler.pipeline", 2)
    assert LAYER_OF[_unit(target)] > LAYER_OF[_unit("forge_fe.op.probe")]
    assert _cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]


if __name__ == "__main__":
    print(render_map(), end="")
