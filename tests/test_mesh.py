"""Multi-chip meshes (docs/mesh.md): the sharding pass op by op, the collectives' runtime against
their golden rules, device-order bf16 reductions, models on 1x2 / 1x8 / 2x4 meshes against torch,
TTIR with mesh attributes, the per-chip memory plan and its errors, and the binary's mesh check.

Default run: tiny configs; the Llama-3-8B plan is shape-only (meta device, no weights)."""
import numpy as np
import pytest
import torch

import forge_fe
from forge_fe.errors import ForgeError, RuntimeFailure
from forge_fe.graph.graph import Graph
from forge_fe.mesh import resolve_mesh
from forge_fe.passes.mesh.propagate import Partitioner
from forge_fe.device.mesh_runtime import MESH_KERNELS, MeshProgram
from forge_fe.passes.mesh.sharding import Sharding
from forge_fe.op import OPS
from forge_fe.compiler.lower_ttir import lower_graph

Y = 1          # mesh axis "y" (cluster_axis 1)


def run_local(graph, mesh, inputs):
    """Lower a per-chip graph and run it SPMD on the emulated mesh."""
    prog, _ = lower_graph(graph, "main")
    return MeshProgram(prog, {}, mesh.shape).run([torch.as_tensor(x) for x in inputs])


def shardings(p: Partitioner) -> dict:
    """node name -> sharding text, from the pass's op-by-op log ('%n = op : [global] -> [local] S')."""
    out = {}
    for line in p.log:
        if line.startswith("%") and " = " in line:
            name, rest = line[1:].split(" = ", 1)
            rest = rest.split(" : ", 1)[1].split(" -> ")[-1]
            out[name] = rest.split("] ", 1)[1]
    return out


def mlp_graph(rng, hidden=16, inner=32):
    g = Graph("mlp")
    x = g.add_input("x", (4, hidden), "float32")
    w1 = g.add_const("up.weight", rng.standard_normal((hidden, inner)).astype(np.float32), kind="parameter")
    w2 = g.add_const("down.weight", rng.standard_normal((inner, hidden)).astype(np.float32), kind="parameter")
    h = g.add_op(OPS["gelu"], "gelu", [g.add_op(OPS["matmul"], "up", [x, w1], {})], {})
    g.outputs = [g.add_op(OPS["matmul"], "down", [h, w2], {})]
    return g, (x, w1, w2)


# ---- the propagation pass, op by op ----------------------------------------------------------

def test_column_then_row_parallel_matmul_needs_one_all_reduce(rng):
    mesh = resolve_mesh("n300")
    g, (x, w1, w2) = mlp_graph(rng)
    p = Partitioner(g, mesh, {w1: Sharding((None, Y)), w2: Sharding((Y, None))})
    local = p.run()
    s = shardings(p)
    assert s["up"] == "[-, y]"                      # column parallel: output features split
    assert s["gelu"] == "[-, y]"                    # elementwise keeps the split
    assert s["down"] == "[-, -] partial(y)"         # row parallel: partial sums
    assert dict(p.collectives) == {"all_reduce": 1}
    assert p.output_shardings == [Sharding((None, None))]
    assert [n.shape for n in local.nodes if n.op is OPS["matmul"]] == [(4, 16), (4, 16)]   # per chip
    xv = rng.standard_normal((4, 16)).astype(np.float32)
    want = torch.nn.functional.gelu(torch.from_numpy(xv) @ torch.from_numpy(w1.value)) @ torch.from_numpy(w2.value)
    got = run_local(local, mesh, [xv])[0]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_a_partial_sum_wanted_split_becomes_a_reduce_scatter(rng):
    mesh = resolve_mesh("1x8")
    g = Graph("rs")
    x = g.add_input("x", (16, 32), "float32")
    r = g.add_input("r", (16, 8), "float32")
    w = g.add_const("w", rng.standard_normal((32, 8)).astype(np.float32), kind="parameter")
    g.outputs = [g.add_op(OPS["add"], "add", [g.add_op(OPS["matmul"], "mm", [x, w], {}), r], {})]
    p = Partitioner(g, mesh, {x: Sharding((None, Y)), w: Sharding((Y, None)), r: Sharding((Y, None))})
    local = p.run()
    assert shardings(p)["mm"] == "[-, -] partial(y)" and shardings(p)["add"] == "[y, -]"
    assert dict(p.collectives) == {"reduce_scatter": 1}
    xv, rv = rng.standard_normal((16, 32)).astype(np.float32), rng.standard_normal((16, 8)).astype(np.float32)
    torch.testing.assert_close(run_local(local, mesh, [xv, rv])[0],
                               torch.from_numpy(xv @ w.value + rv), rtol=1e-5, atol=1e-5)


def test_reshape_keeps_a_split_only_when_its_block_stays_contiguous(rng):
    mesh = resolve_mesh("n300")
    g = Graph("heads")
    x = g.add_input("x", (2, 8, 64), "float32")
    heads = g.add_op(OPS["reshape"], "heads", [x], {"shape": [2, 8, 4, 16]})      # 64 -> 4 heads x 16
    flat = g.add_op(OPS["reshape"], "flat", [g.add_op(OPS["permute"], "t", [heads], {"perm": [0, 2, 1, 3]})],
                    {"shape": [8, 8, 16]})                                          # (batch, heads) merged
    g.outputs = [flat]
    p = Partitioner(g, mesh, {x: Sharding((None, None, Y))})
    local = p.run()
    s = shardings(p)
    assert s["heads"] == "[-, -, y, -]"             # the split of 64 is a split of the 4 heads
    assert s["t"] == "[-, y, -, -]"
    assert s["flat"] == "[-, -, -]"                 # heads inside a merged (batch*heads) dim: gathered
    assert dict(p.collectives) == {"all_gather": 1}
    xv = rng.standard_normal((2, 8, 64)).astype(np.float32)
    want = torch.from_numpy(xv).reshape(2, 8, 4, 16).permute(0, 2, 1, 3).reshape(8, 8, 16)
    torch.testing.assert_close(run_local(local, mesh, [xv])[0], want)


def test_vocab_parallel_embedding_looks_up_locally_and_sums(rng):
    mesh = resolve_mesh("1x8")
    g = Graph("emb")
    ids = g.add_input("ids", (2, 5), "int32")
    table = g.add_const("embed.weight", rng.standard_normal((64, 16)).astype(np.float32), kind="parameter")
    g.outputs = [g.add_op(OPS["take"], "take", [table, ids], {"axis": 0})]
    p = Partitioner(g, mesh, {table: Sharding((Y, None))})
    local = p.run()
    assert shardings(p)["take"] == "[-, -, -] partial(y)"
    assert dict(p.collectives) == {"all_reduce": 1}
    table_shards = [n for n in local.nodes if n.op is OPS["mesh_shard"] and n.inputs[0].name == "embed.weight"]
    assert [n.shape for n in table_shards] == [(8, 16)]          # each chip holds 8 of the 64 rows
    iv = rng.integers(0, 64, (2, 5)).astype(np.int32)
    torch.testing.assert_close(run_local(local, mesh, [iv])[0], torch.from_numpy(table.value[iv]))


def test_unseeded_weights_take_the_layout_their_user_wants(rng):
    mesh = resolve_mesh("n300")
    g = Graph("bias")
    x = g.add_input("x", (4, 16), "float32")
    w = g.add_const("w", rng.standard_normal((16, 32)).astype(np.float32), kind="parameter")
    b = g.add_const("b", rng.standard_normal((32,)).astype(np.float32), kind="parameter")
    g.outputs = [g.add_op(OPS["linear"], "fc", [x, w, b], {})]
    p = Partitioner(g, mesh, {w: Sharding((None, Y))})
    local = p.run()
    assert shardings(p)["fc"] == "[-, y]" and not p.collectives
    bias = [n for n in local.nodes if n.op is OPS["mesh_shard"] and n.inputs[0].name == "b"]
    assert bias[0].shape == (16,)                   # the bias was split with the output features


# ---- the collectives: emulated-mesh kernels against the ops' golden rules ---------------------------

def _stacked(values, mesh_shape):
    return torch.stack([torch.stack(values[r * mesh_shape[1]:(r + 1) * mesh_shape[1]]) for r in range(mesh_shape[0])])


@pytest.mark.parametrize("name,attrs", [
    ("all_reduce", {"cluster_axis": 1}), ("all_reduce", {"cluster_axis": 0}),
    ("all_gather", {"cluster_axis": 1, "all_gather_dim": 1}), ("all_gather", {"cluster_axis": 0, "all_gather_dim": 0}),
    ("reduce_scatter", {"cluster_axis": 1, "scatter_dim": 0}), ("mesh_partition", {"cluster_axis": 1, "dim": 1}),
])
def test_collective_kernels_match_their_golden_rule(name, attrs, rng):
    shape = (2, 4)
    values = [torch.from_numpy(rng.standard_normal((8, 12)).astype(np.float32)) for _ in range(8)]
    got = MESH_KERNELS[f"ttir.{name}"]([[v] for v in values], attrs, shape, None)
    want = OPS[name].golden([_stacked(values, shape)], dict(attrs, mesh_shape=list(shape)))
    torch.testing.assert_close(_stacked(got, shape), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("attrs", [
    {"shard_type": "devices", "shard_dims": [0, 1], "shard_shape": [2, 4]},
    {"shard_type": "devices", "shard_dims": [-1, 0], "shard_shape": [4, 1]},
    {"shard_type": "replicate", "shard_dims": [-1], "shard_shape": [1]},
])
def test_mesh_shard_round_trips_and_matches_its_golden_rule(attrs, rng):
    shape = (2, 4)
    x = torch.from_numpy(rng.standard_normal((8, 12)).astype(np.float32))
    a = dict(attrs, mesh_shape=list(shape), shard_direction="full_to_shard")
    pieces = MESH_KERNELS["ttir.mesh_shard"]([[x]] * 8, a, shape, None)
    torch.testing.assert_close(_stacked(pieces, shape), OPS["mesh_shard"].golden([x], a))
    back = MESH_KERNELS["ttir.mesh_shard"]([[p] for p in pieces], dict(a, shard_direction="shard_to_full"), shape, None)
    torch.testing.assert_close(back[0], x)


def test_bf16_all_reduce_rounds_after_every_hop_in_ring_order():
    """Chunk j is summed starting on chip j-1, then j-2, ..., ending on chip j, rounded to bf16 after
    every add (runtime docstring). Chip 0 holds 1.0, chips 1-3 hold 2^-8 (bf16 spacing at 1.0 is 2^-7):
    an order that adds 1.0 first loses each 2^-8 to round-half-even, one that adds it last keeps them."""
    from forge_fe.config import DataFormat
    n = 4
    values = [torch.full((n,), 1.0 if k == 0 else 2.0 ** -8) for k in range(n)]
    got = MESH_KERNELS["ttir.all_reduce"]([[v] for v in values], {"cluster_axis": 1}, (1, n), DataFormat.Float16_b)[0]
    want = []
    for j in range(n):                  # the same order, restated with torch's own bf16 casts
        order = [(j - 1 - s) % n for s in range(n)]
        acc = values[order[0]][j]
        for k in order[1:]:
            acc = (acc + values[k][j]).to(torch.bfloat16).float()
        want.append(acc)
    torch.testing.assert_close(got, torch.stack(want), rtol=0, atol=0)
    once = torch.stack(values).sum(0).to(torch.bfloat16).float()      # one rounding of the exact sum
    assert not torch.equal(got, once) and len(set(got.tolist())) == 2


# ---- models on meshes against torch ----------------------------------------------------------------

def _llama(batch):
    from transformers import LlamaConfig
    from forge_fe import zoo
    model, _ = zoo._causal_lm(LlamaConfig, dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                                                num_attention_heads=8, num_key_value_heads=8, vocab_size=512,
                                                max_position_embeddings=64), 8, 0, "LlamaModel")
    return model, [torch.randint(0, 512, (batch, 8), generator=torch.Generator().manual_seed(1))]


def _bert(batch):
    from forge_fe import zoo
    return zoo._bert(dict(hidden_size=64, num_hidden_layers=1, num_attention_heads=8, intermediate_size=128,
                          vocab_size=512, max_position_embeddings=64), batch, 8, 0)


def _gpt2(batch):
    from forge_fe import zoo
    model, _ = zoo.gpt2(8, 0, n_layer=1, n_embd=64, n_head=8, vocab_size=512, n_positions=64, bos_token_id=0,
                        eos_token_id=0)
    return model, [torch.randint(0, 512, (batch, 8), generator=torch.Generator().manual_seed(1))]


MODELS = {"llama": _llama, "bert": _bert, "gpt2": _gpt2}
DEFAULT_RUN = {("llama", "1x2", "fp32"), ("llama", "1x8", "fp32"), ("llama", "2x4", "bf16"),
               ("bert", "1x2", "bf16"), ("bert", "1x8", "fp32"), ("bert", "2x4", "fp32"),
               ("gpt2", "1x2", "fp32"), ("gpt2", "1x8", "bf16"), ("gpt2", "2x4", "fp32")}
CASES = [pytest.param(m, s, df, marks=() if (m, s, df) in DEFAULT_RUN else pytest.mark.nightly)
         for m in MODELS for s in ("1x2", "1x8", "2x4") for df in ("fp32", "bf16")]


@pytest.mark.parametrize("model_name,mesh,df", CASES)
def test_model_on_a_mesh_matches_torch(model_name, mesh, df):
    model, inputs = MODELS[model_name](batch=2 if mesh == "2x4" else 1)     # 2x4: data parallel over x too
    bf16 = df == "bf16"
    cfg = forge_fe.CompilerConfig(mesh=mesh, default_df_override=forge_fe.DataFormat.Float16_b if bf16 else None)
    cm = forge_fe.compile(model, inputs, compiler_cfg=cfg)
    report = cm.report.to_dict()["mesh"]
    assert report["shape"] == [int(d) for d in mesh.split("x")] and report["fits"]
    assert report["collectives"].get("all_reduce", 0) >= 2          # attention + MLP, each one all-reduce
    assert "all_gather" not in report["collectives"]                # Megatron needs no gathers in a block
    assert report["link_time_ms"] > 0 and report["compute_time_ms"] > 0
    # PCC: fp32 runs agree to rounding; bf16 keeps 8 mantissa bits per value and per all-reduce hop
    forge_fe.verify(inputs, model, cm, pcc_min=0.99 if bf16 else 0.999, **({"atol": 1.0, "rtol": 1.0} if bf16 else {}))


# ---- TTIR, binary and the runtime's mesh --------------------------------------------------------------

@pytest.fixture(scope="module")
def mlp_on_n300():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.GELU(), torch.nn.Linear(64, 32)).eval()
    x = torch.randn(4, 32)
    specs = {"0.weight": ("y", None), "0.bias": ("y",), "2.weight": (None, "y")}
    return model, x, forge_fe.compile(model, [x], compiler_cfg=forge_fe.CompilerConfig(mesh="n300", shard_specs=specs))


def test_ttir_has_the_mesh_shards_and_collectives_and_parses(mlp_on_n300):
    ir = pytest.importorskip("jaxlib.mlir.ir")
    from jaxlib.mlir._mlir_libs import _jax_mlir_ext
    _, _, cm = mlp_on_n300
    text = cm.ttir
    assert text.startswith('module @Sequential attributes {ttcore.meshes = #ttcore.meshes<[<"mesh" = 1x2>]>}')
    assert '"ttir.all_reduce"' in text and "cluster_axis = 1 : ui32, reduce_type = #ttcore.reduce_type<sum>" in text
    assert "shard_direction = #ttcore.shard_direction<full_to_shard>" in text
    assert "shard_dims = array<i64: -1, 0>, shard_direction" in text and "shard_type = #ttcore.shard_type<devices>" in text
    assert "shard_direction = #ttcore.shard_direction<shard_to_full>" in text
    ctx = ir.Context()
    registry = ir.DialectRegistry()
    _jax_mlir_ext.register_dialects(registry)
    ctx.append_dialect_registry(registry)
    ctx.allow_unregistered_dialects = True
    ctx.load_all_available_dialects()
    assert ir.Module.parse(text, ctx).operation.verify()


def test_explicit_specs_shard_what_they_name(mlp_on_n300):
    model, x, cm = mlp_on_n300
    mesh = cm.report.to_dict()["mesh"]
    assert mesh["parameters"] == {"0.weight": "[y, -]", "0.bias": "[y]", "2.weight": "[-, y]"}
    assert mesh["collectives"] == {"all_reduce": 1}
    forge_fe.verify([x], model, cm)


@pytest.mark.parametrize("specs,match", [
    ({"0.weight": ("y",)}, "1 entries for a tensor of rank 2"),
    ({"0.weight": ("z", None)}, "mesh axis 'z'"),
    ({"0.weight": ("y", None)}, r"dim 0 \(size 63\) does not divide over axis 'y' of 2 chips"),
    ({"0.weight": ("y", "y")}, "uses a mesh axis twice"),
    ({"0.wieght": ("y", None)}, "match no parameter"),
])
def test_bad_shard_specs_are_refused_with_the_tensor_named(specs, match):
    model = torch.nn.Sequential(torch.nn.Linear(32, 63)).eval()
    with pytest.raises(ForgeError, match=match):
        forge_fe.compile(model, [torch.randn(2, 32)], compiler_cfg=forge_fe.CompilerConfig(mesh="n300", shard_specs=specs))


def test_binary_records_its_mesh_and_refuses_another(mlp_on_n300, tmp_path):
    model, x, cm = mlp_on_n300
    path = tmp_path / "m.ttb"
    cm.save(path)
    ok = forge_fe.load(path, mesh="n300")
    torch.testing.assert_close(ok(x), model(x), rtol=1e-5, atol=1e-5)
    assert forge_fe.load(path).report.mesh["system"] == "n300"
    with pytest.raises(RuntimeFailure, match=r"compiled for mesh n300 \(1x2\); this runtime is t3k \(1x8\)"):
        forge_fe.load(path, mesh="t3k")
    single = forge_fe.compile(model, [x])
    single.save(tmp_path / "one.ttb")
    with pytest.raises(RuntimeFailure, match="compiled for one chip"):
        forge_fe.load(tmp_path / "one.ttb", mesh="n300")


def test_cli_compiles_and_runs_for_a_mesh(tmp_path, capsys):
    from forge_fe.tools.cli import EXIT_OK, EXIT_RUNTIME, main
    out, x = tmp_path / "b.ttb", tmp_path / "x.npz"
    assert main(["--quiet", "compile", "forge_fe.zoo:bert_tiny", "-o", str(out), "--mesh", "n300",
                 "--save-inputs", str(x)]) == EXIT_OK
    assert "mesh n300 1x2" in capsys.readouterr().out
    assert main(["--quiet", "run", str(out), "--inputs", str(x), "--mesh", "n300"]) == EXIT_OK
    assert main(["--quiet", "run", str(out), "--inputs", str(x), "--mesh", "1x8"]) == EXIT_RUNTIME
    assert "compiled for mesh n300" in capsys.readouterr().err


def test_unknown_meshes_are_refused_early():
    with pytest.raises(ForgeError, match="unknown system 'n400'"):
        forge_fe.CompilerConfig(mesh="n400")
    with pytest.raises(ForgeError, match="no wormhole_b0 system has 3 chips"):
        forge_fe.CompilerConfig(mesh_shape=(1, 3))
    assert forge_fe.CompilerConfig(mesh="p300").arch == "blackhole"


# ---- memory plan ------------------------------------------------------------------------------------

def test_a_model_too_big_for_one_chip_names_its_tensors_and_the_mesh_that_fits(monkeypatch):
    from forge_fe.compiler import binary_builder
    from forge_fe.binary import model as bm
    small = bm.SystemDesc("wormhole_b0", (8, 8), 1464 * 1024, 4 * 2**20, 288e9, 1.0e9)    # a 4 MiB "chip"
    monkeypatch.setitem(binary_builder.ARCHS, "wormhole_b0", small)
    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.up_proj, self.down_proj = torch.nn.Linear(512, 1024), torch.nn.Linear(1024, 512)

        def forward(self, x):
            return self.down_proj(torch.nn.functional.gelu(self.up_proj(x)))
    model = MLP().eval()
    with pytest.raises(ForgeError, match=r"needs .* MiB per chip on n150 \(1x1\).* 4.00 MiB of DRAM; the largest "
                                         r"tensors are '(up|down)_proj.weight' \(2.00 MiB.* it fits on n300 \(1x2\)") as e:
        forge_fe.compile(model, [torch.randn(1, 512)], compiler_cfg=forge_fe.CompilerConfig(mesh="n150"))
    assert "mesh='n300'" in e.value.hint


def test_llama3_8b_is_planned_shape_only_too_big_for_n150_fits_t3k():
    """Llama-3-8B's configuration on the meta device: no weight is ever materialized."""
    from transformers import LlamaConfig, LlamaForCausalLM
    from forge_fe.zoo import HiddenStates
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0,
                      attn_implementation="eager", use_cache=False, tie_word_embeddings=False)
    with torch.device("meta"):
        model = HiddenStates(LlamaForCausalLM(cfg), fields=("logits",)).eval()
    n150, n300, t3k = forge_fe.mesh.plan(model, [torch.zeros((1, 32), dtype=torch.long)],
                                         mesh=["n150", "n300", "t3k"], default_df_override="Float16_b")
    assert n150["shape_only"] and not n150["fits"] and t3k["fits"]
    bf16_weights = 2 * sum(p.numel() for p in model.parameters())
    assert 1.0 <= n150["per_device_weight_bytes"] / bf16_weights < 1.01          # tile padding only
    assert n150["per_device_weight_bytes"] > n150["dram_bytes_per_device"]
    for plan, chips in ((n300, 2), (t3k, 8)):                                   # ~1/N of the weights per chip
        assert 1.0 <= plan["per_device_weight_bytes"] * chips / n150["per_device_weight_bytes"] < 1.01
        assert plan["collectives"] == {"all_reduce": 1 + 2 * 32}                 # embedding + 2 per layer
    assert t3k["compute_time_ms"] < n300["compute_time_ms"] < n150["compute_time_ms"]
    assert n150["link_time_ms"] == 0 < n300["link_time_ms"]


# ---- generation on a mesh ---------------------------------------------------------------------------

def test_compile_lm_generates_hf_tokens_on_a_mesh_with_the_kv_cache_split_over_heads(tmp_path):
    from forge_fe.generation.models import causal_lm
    model = causal_lm("llama", num_key_value_heads=4)           # 4 KV heads: 2 per chip on an n300
    model.generation_config.eos_token_id = None
    lm = forge_fe.compile_lm(model, max_cache_len=32, prefill_buckets=[8],
                             compiler_cfg=forge_fe.CompilerConfig(mesh="n300"))
    ids = torch.randint(0, 512, (1, 6), generator=torch.Generator().manual_seed(3))
    want = model.generate(ids, max_new_tokens=12, do_sample=False)
    assert torch.equal(lm.generate(ids, max_new_tokens=12), want)
    decode = lm.report.to_dict()["mesh"]["decode"]
    # 4 cache tensors (k, v of 2 layers), per chip 2 of the 4 heads, each head [32 slots, 16] padded to one
    # 32x32 fp32 tile: half of what one chip would hold
    assert decode["per_device_kv_cache_bytes"] == 4 * 2 * (32 * 32 * 4)
    assert decode["collectives"] == {"all_reduce": 5}           # embedding + attention and MLP per layer
    lm.save(tmp_path / "lm.ttb")
    with pytest.raises(RuntimeFailure, match="compiled for mesh n300"):
        forge_fe.load(tmp_path / "lm.ttb", mesh="p150")
    assert torch.equal(forge_fe.load(tmp_path / "lm.ttb", mesh="n300").generate(ids, max_new_tokens=12), want)


def test_link_model_prices_bytes_over_links_and_topology():
    """cost.py's model: time grows with the bytes over the axis bandwidth; a ring beats a line of the
    same links (both directions); more links are faster; one chip costs nothing."""
    from dataclasses import replace
    from forge_fe.binary import model as bm
    from forge_fe.compiler.binary_builder import ARCHS
    from forge_fe.device.mesh_perf import collective_time
    from forge_fe.systems import Axis
    system = ARCHS["wormhole_b0"]
    t3k = resolve_mesh("t3k", (1, 8))                          # ring, 1 usable link per pair
    line = replace(t3k, axes=(t3k.axes[0], Axis("line", 1)))
    wide = replace(t3k, axes=(t3k.axes[0], Axis("ring", 4)))
    small, big = (bm.TensorDesc("x", (1024, 1024), "bfloat16", "Float16_b"),
                  bm.TensorDesc("x", (2048, 1024), "bfloat16", "Float16_b"))
    for op in ("ttir.all_gather", "ttir.all_reduce", "ttir.reduce_scatter"):
        a, b = collective_time(op, small, 1, t3k, system), collective_time(op, big, 1, t3k, system)
        assert 1.9 < b / a < 2.0                                # bandwidth-bound at 2 MB, latency adds a little
        assert collective_time(op, small, 1, wide, system) < a  # more links
        assert collective_time(op, small, 0, t3k, system) == 0  # the 1-chip axis
    gather = [collective_time("ttir.all_gather", small, 1, m, system) for m in (t3k, line)]
    assert gather[0] < gather[1]                                # a ring uses both directions
    bw = t3k.axis_bandwidth(1)
    assert bw == 12.5e9                                         # 100 Gbps per direction, one usable link
    assert collective_time("ttir.all_gather", small, 1, line, system) > 7 * 2 * 2**20 / bw


def test_a_meta_device_model_is_planned_but_not_compiled_to_a_binary():
    with torch.device("meta"):
        model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.GELU(), torch.nn.Linear(256, 64)).eval()
    x = torch.randn(2, 64)
    plan = forge_fe.mesh.plan(model, [x], mesh="n300", shard_specs={"0.weight": ("y", None), "2.weight": (None, "y")})
    assert plan["shape_only"] and plan["fits"] and plan["collectives"] == {"all_reduce": 1}
    with pytest.raises(ForgeError, match="weights on the meta device"):
        forge_fe.compile(model, [x], compiler_cfg=forge_fe.CompilerConfig(mesh="n300"))


def test_fewer_heads_than_chips_replicates_the_projection_instead_of_gathering():
    from forge_fe import zoo
    model, x = zoo.llama_tiny(seq=8)                        # 4 query heads, 2 KV heads
    cm = forge_fe.compile(model, x, compiler_cfg=forge_fe.CompilerConfig(mesh="1x8"))
    mesh = cm.report.to_dict()["mesh"]
    assert "model.layers.0.self_attn.k_proj.weight" not in mesh["parameters"]
    assert any("2 heads do not divide over axis 'y' of 8 chips" in n for n in mesh["notes"])
    assert "all_gather" not in mesh["collectives"]
    assert mesh["parameters"]["model.layers.0.mlp.up_proj.weight"] == "[y, -]"     # the MLP still splits
    forge_fe.verify(x, model, cm)
