"""Runtime speed work (issue 14), checked by structure and by results, never by timing: the per-op
profiler, fusions the compiler makes, rounding the bf16 emulator skips, weights that live once,
and no whole-module printing when no dump directory was asked for."""
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import forge_fe
from forge_fe.tools import cli
from forge_fe.config import DataFormat
from forge_fe.device import executor, program as device_program
from forge_fe.device.profile import Profiler


class NewGELU(nn.Module):
    """GPT-2's activation exactly as transformers spells it, between two linears."""

    def __init__(self, k=0.044715):
        super().__init__()
        self.fc1, self.fc2, self.k = nn.Linear(16, 32), nn.Linear(32, 8), k

    def forward(self, x):
        h = self.fc1(x)
        h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + self.k * torch.pow(h, 3.0))))
        return self.fc2(h)


def _ops(cm):
    return [o.name for p in cm.binary.programs for o in p.ops]


def test_spelled_out_gelu_becomes_one_op_and_matches_torch():
    torch.manual_seed(0)
    model, x = NewGELU().eval(), torch.randn(2, 4, 16)
    cm = forge_fe.compile(model, [x])
    ops = _ops(cm)
    assert ops.count("ttir.gelu") == 1 and "ttir.tanh" not in ops and "ttir.pow" not in ops
    forge_fe.verify([x], model, cm)


def test_gelu_lookalike_with_another_coefficient_is_left_alone():
    torch.manual_seed(0)
    model, x = NewGELU(k=0.05).eval(), torch.randn(2, 4, 16)
    cm = forge_fe.compile(model, [x])
    assert "ttir.gelu" not in _ops(cm) and "ttir.tanh" in _ops(cm)
    forge_fe.verify([x], model, cm)


class ScaledNorm(nn.Module):
    """Broadcasting scalar and vector constants (the RMSNorm shape) and data movement."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(16))

    def forward(self, x):
        y = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.w
        return y.reshape(2, 2, 2, 16).permute(0, 2, 1, 3).relu()


def test_constant_operands_are_reshaped_at_compile_time():
    model, x = ScaledNorm().eval(), torch.randn(2, 4, 16)
    cm = forge_fe.compile(model, [x])
    for prog in cm.binary.programs:
        consts = set(prog.constants)
        assert not [o for o in prog.ops if o.name == "ttir.reshape" and o.inputs[0] in consts]
    forge_fe.verify([x], model, cm)


def test_bf16_emulator_skips_only_rounding_that_cannot_change_values(monkeypatch):
    model, x = ScaledNorm().eval(), torch.randn(2, 4, 16)
    cfg = forge_fe.CompilerConfig(default_df_override=DataFormat.Float16_b)
    cm = forge_fe.compile(model, [x], compiler_cfg=cfg)
    steps = [s for p in cm.executor.programs for s in p.steps]
    skipped = {s.op.name for s in steps if s.fmt is None}
    assert {"ttir.permute", "ttir.relu"} <= skipped           # bf16 in, bf16 out: values already bf16
    assert {s.op.name for s in steps if s.fmt is DataFormat.Float16_b} >= {"ttir.rms_norm"}   # computed: rounded
    fast = cm(x)
    monkeypatch.setattr(device_program, "VALUE_PRESERVING", set())   # round after every op
    slow = forge_fe.compile(model, [x], compiler_cfg=cfg)
    assert all(s.fmt is not None for p in slow.executor.programs for s in p.steps
               if s.dtype == torch.float32 and p.formats[s.out] is not None)
    assert torch.equal(fast, slow(x))                          # bit for bit


def test_inference_weights_are_the_frameworks_buffers():
    """Zero weight copies: every weight the binary and the device program hold shares memory with
    the torch parameter it came from (training keeps its own copy; see frontend/torch.py)."""
    torch.manual_seed(0)
    model, x = NewGELU().eval(), torch.randn(2, 4, 16)
    cm = forge_fe.compile(model, [x])
    cm(x)
    params = [p.detach().numpy() for p in model.parameters()]
    held = [v for p in cm.binary.programs for v in p.constants.values()] + list(cm.binary.constants.values())
    held += [t.numpy() for p in cm.executor.programs for t in p.slots if t is not None and t.dtype == torch.float32]
    big = [a for a in held if np.asarray(a).size >= 8 * 16]
    assert big and all(any(np.shares_memory(a, p) for p in params) for a in big)


def test_no_whole_module_printing_without_a_dump_dir(monkeypatch, tmp_path):
    import tvm
    calls = []
    real = tvm.ir.IRModule.script
    monkeypatch.setattr(tvm.ir.IRModule, "script", lambda self, *a, **k: calls.append(1) or real(self, *a, **k))
    model, x = ScaledNorm().eval(), torch.randn(2, 4, 16)
    forge_fe.compile(model, [x])
    assert calls == []
    forge_fe.compile(model, [x], compiler_cfg=forge_fe.CompilerConfig(dump_dir=str(tmp_path)))
    assert calls and (tmp_path / "02_relax_passes.py").exists()


def test_profiler_counts_every_op_of_each_run():
    torch.manual_seed(0)
    model, x = NewGELU().eval(), torch.randn(2, 4, 16)
    cm = forge_fe.compile(model, [x])
    cm(x)
    prof = cm.executor.profiler = Profiler()
    for _ in range(3):
        prof.run(cm, x)
    steps = [s.op.name for p in cm.executor.programs if not p.prog.private for s in p.steps]
    rows = {r["op"]: r for r in prof.rows()}
    assert {op: rows[op]["calls"] for op in rows} == {op: steps.count(op) for op in set(steps)}
    assert abs(sum(r["share"] for r in rows.values()) - 1.0) < 1e-6
    assert "ttir.gelu" in prof.table()


def test_cli_run_profile_prints_the_table(tmp_path, capsys):
    torch.manual_seed(0)
    model, x = NewGELU().eval(), torch.randn(2, 4, 16)
    path = tmp_path / "m.ttb"
    forge_fe.compile(model, [x]).save(str(path))
    np.savez(tmp_path / "x.npz", x.numpy())
    assert cli.main(["--quiet", "run", str(path), "--inputs", str(tmp_path / "x.npz"), "--profile", "--iters", "2"]) == 0
    out = capsys.readouterr().out
    assert "profile over 2 run(s)" in out and "ttir.linear" in out and "slowest" in out


@pytest.mark.parametrize("shape", [(3, 16), (2, 3, 16)])
def test_linear_kernel_bias_in_gemm(shape):
    from forge_fe.device.kernels import KERNELS
    x, w, b = torch.randn(*shape), torch.randn(16, 8), torch.randn(8)
    torch.testing.assert_close(KERNELS["ttir.linear"]([x, w, b], {}), x @ w + b)
    torch.testing.assert_close(KERNELS["ttir.linear"]([x, w.t().contiguous(), b], {"transpose_b": True}), x @ w + b)


def _count_layouts(monkeypatch, kind="nk"):
    """The layouts of `kind` make_matmul asks for (each the weight itself or a copy of it)."""
    from forge_fe.device import kernels
    made = []
    real = kernels._shared
    monkeypatch.setattr(kernels, "_shared", lambda k, y, raw, make: (made.append(real(k, y, raw, make)) or made[-1])
                        if k == kind else real(k, y, raw, make))
    return made


@pytest.mark.parametrize("name,as_view", [
    ("ttir.matmul", True),      # a [K, N] view of an [N, K] weight, as importers give torch's: no copy
    ("ttir.linear", True),
    ("ttir.matmul", False),     # a row-major [K, N] weight (an ONNX MatMul initializer): one copy
])
def test_one_row_products_read_a_stable_weight_laid_out_once(monkeypatch, name, as_view):
    """A decode step's M = 1 products run on the weight as [N, K] row-major, laid out once (for an
    unmodified weight); results equal the plain kernel's within float32 rounding (each output is
    the same K-long dot product, summed in another order)."""
    from forge_fe.device import kernels
    torch.manual_seed(0)
    k, n = 24, 40
    w = torch.randn(n, k).t() if as_view else torch.randn(k, n)
    bias = torch.randn(n) if name == "ttir.linear" else None
    ins = lambda x: [x, w] if bias is None else [x, w, bias]
    want = lambda x: x @ w if bias is None else x @ w + bias
    made = _count_layouts(monkeypatch)
    run = kernels.make_matmul(name)
    for _ in range(3):
        x = torch.randn(1, 1, k)
        torch.testing.assert_close(run(ins(x), {}), want(x), rtol=1e-5, atol=1e-5)
    assert len(made) == 1 and made[0].is_contiguous() and list(made[0].shape) == [n, k]
    assert np.shares_memory(made[0].numpy(), w.numpy()) == as_view
    w.mul_(2.0)                     # modified in place: the old layout must not be served
    x = torch.randn(1, 1, k)
    torch.testing.assert_close(run(ins(x), {}), want(x), rtol=1e-5, atol=1e-5)
    assert len(made) == 2


@pytest.mark.parametrize("name", ["ttir.matmul", "ttir.linear"])
def test_many_row_products_run_on_a_weight_reordered_once(monkeypatch, name):
    """M > 1 products run as oneDNN's GEMM on the weight reordered once into its blocked layout,
    however the weight is laid out, for any M; every call gives the bits of the first. A weight
    modified in place after that (training) is read as it is, never through the stale reorder."""
    from forge_fe.device import kernels
    torch.manual_seed(0)
    k, n = 48, 80
    for w in (torch.randn(n, k).t(), torch.randn(k, n)):
        bias = torch.randn(n) if name == "ttir.linear" else None
        ins = lambda x: [x, w] if bias is None else [x, w, bias]
        want = lambda x: x @ w + (0 if bias is None else bias)
        made = _count_layouts(monkeypatch, "blocked")
        run = kernels.make_matmul(name)
        x = torch.randn(2, 8, k)                  # 16 rows
        first = run(ins(x), {})
        torch.testing.assert_close(first, want(x), rtol=1e-5, atol=1e-5)
        assert all(torch.equal(run(ins(x), {}), first) for _ in range(3))
        x5 = torch.randn(5, k)                    # another M: the same reorder serves it
        torch.testing.assert_close(run(ins(x5), {}), want(x5), rtol=1e-5, atol=1e-5)
        assert len(made) == 1 and made[0].is_mkldnn
        w.mul_(2.0)
        torch.testing.assert_close(run(ins(x), {}), want(x), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(run(ins(x), {}), want(x), rtol=1e-5, atol=1e-5)
        assert len(made) == 1                     # not reordered again: trained weights change every step


def test_weight_copies_can_be_turned_off_for_memory():
    """FORGE_FE_WEIGHT_COPIES=0 (docs/kernels.md, item 5): products read every weight as it is."""
    probe = ("import torch; from forge_fe.device import kernels; w = torch.randn(24, 40); "
             "[kernels.make_matmul('ttir.matmul')([torch.randn(m, 24), w], {}) for m in (1, 16)]; "
             "print(len(kernels._PACKED))")
    run = lambda flag: subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                                      env={**os.environ, "FORGE_FE_WEIGHT_COPIES": flag}).stdout.split()
    assert run("0") == ["0"]
    assert run("1") == ["2"]                        # an [N, K] copy for the GEMV, a reorder for the GEMM


def test_views_of_one_weight_share_one_laid_out_copy(monkeypatch):
    """An LM's prefill and decode programs read the same weight through views of their own: one
    copy serves both, and a new version of the weight is laid out anew."""
    from forge_fe.device import kernels
    made = _count_layouts(monkeypatch)
    torch.manual_seed(0)
    w = torch.randn(16, 64)                        # row-major [K, N]: the one-row product wants a copy
    prefill_head, decode_head = kernels.make_matmul("ttir.matmul"), kernels.make_matmul("ttir.matmul")
    views = {prefill_head: w.view(16, 64), decode_head: w.view(16, 64)}
    x = torch.randn(1, 16)
    for run in (prefill_head, decode_head, decode_head):
        torch.testing.assert_close(run([x, views[run]], {}), x @ w)
    assert len(made) == 2 and made[0] is made[1]   # each program asked once; one copy serves both
    w.add_(1.0)
    torch.testing.assert_close(decode_head([x, views[decode_head]], {}), x @ w)
    assert len(made) == 3 and made[2] is not made[0]


def test_one_row_products_give_the_same_bits_on_every_call(monkeypatch):
    """The weight is laid out on the first call (the program knows it is a const-eval result), so no
    call sums in another order than the next: the 1st, 2nd and 3rd output agree."""
    made = _count_layouts(monkeypatch)
    torch.manual_seed(0)
    model, x = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 8)).eval(), torch.randn(1, 16)
    cm = forge_fe.compile(model, [x])
    outs = [cm(x) for _ in range(3)]
    assert len(made) == 2                        # each weight once, at the first call
    assert all(torch.equal(o, outs[0]) for o in outs)
    forge_fe.verify([x], model, cm)


class OneRowTimesActivation(nn.Module):
    def forward(self, x, y):
        return x @ (y * 2.0)


def test_one_row_product_of_two_activations_is_never_packed(monkeypatch):
    from forge_fe.device import kernels
    monkeypatch.setattr(kernels, "_shared", lambda *a: pytest.fail("laid out a fresh operand"))
    torch.manual_seed(0)
    model = OneRowTimesActivation()
    cm = forge_fe.compile(model, [torch.randn(1, 8), torch.randn(8, 32)])
    for _ in range(3):
        x, y = torch.randn(1, 8), torch.randn(8, 32)
        torch.testing.assert_close(cm(x, y), model(x, y))


class RMSNormSwiGLU(nn.Module):
    """Llama's RMSNorm and SwiGLU MLP as transformers spells them (the float32 upcast included)."""

    def __init__(self, d=32, hidden=64):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(d))
        self.gate, self.up, self.down = nn.Linear(d, hidden, bias=False), nn.Linear(d, hidden, bias=False), \
            nn.Linear(hidden, d, bias=False)

    def forward(self, x):
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + 1e-6)
        h = self.weight * h.to(x.dtype)
        return self.down(nn.functional.silu(self.gate(h)) * self.up(h))


def test_rms_norm_and_silu_become_one_op_each_and_match_torch():
    torch.manual_seed(0)
    model, x = RMSNormSwiGLU().eval(), torch.randn(2, 8, 32)
    cm = forge_fe.compile(model, [x])
    ops = _ops(cm)
    assert ops.count("ttir.rms_norm") == 1 and ops.count("ttir.silu") == 1
    assert not {"ttir.pow", "ttir.rsqrt", "ttir.mean", "ttir.sigmoid"} & set(ops)
    forge_fe.verify([x], model, cm)
    assert '"ttir.rms_norm"' in cm.ttir and "operandSegmentSizes = array<i32: 1, 1, 0>" in cm.ttir
    # NaN and inf propagate through the fused kernels as through torch's ops (a NaN row stays NaN).
    x[0, 1, 3], x[1, 2, 5] = float("nan"), float("inf")
    torch.testing.assert_close(cm(x), model(x), equal_nan=True, rtol=1e-4, atol=1e-4)
    assert torch.isnan(cm(x)[0, 1]).all()


def test_rms_norm_lookalikes_are_left_alone():
    class SumNorm(nn.Module):           # sum, not mean: not an RMSNorm
        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + 1e-6)

    class LeadingNorm(nn.Module):       # over a leading dim: not the trailing-dims op
        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(0, keepdim=True) + 1e-6)
    x = torch.randn(4, 16)
    for model in (SumNorm(), LeadingNorm()):
        cm = forge_fe.compile(model, [x])
        assert "ttir.rms_norm" not in _ops(cm)
        forge_fe.verify([x], model, cm)


def test_large_ops_split_over_the_device_pool_give_the_unsplit_result(monkeypatch):
    """With 2 intra-op threads, GEMMs and convs run as pieces claimed by the caller and a worker
    (forge_fe.device.parallel); each output element is the same sum as unsplit: bit-identical."""
    from forge_fe.device import kernels, parallel
    runs = []
    real_run = parallel.SplitPool.run
    monkeypatch.setattr(parallel.SplitPool, "run", lambda self, n, fn: (runs.append(n), real_run(self, n, fn)))
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 64, 256), torch.randn(512, 256), torch.randn(512)
    q, k = torch.randn(1, 8, 64, 64), torch.randn(1, 8, 64, 64)
    img, cw, cb, res = torch.randn(1, 16, 16, 64), torch.randn(128, 64, 3, 3), torch.randn(128), torch.randn(1, 16, 16, 128)
    conv_attrs = {"padding": [1, 1, 1, 1], "stride": [1, 1], "dilation": [1, 1], "groups": 1}
    cases = [(kernels.KERNELS["ttir.linear"], [x, w, b], {"transpose_b": True}),
             (kernels.KERNELS["ttir.matmul"], [x, w], {"transpose_b": True}),
             (kernels.KERNELS["ttir.matmul"], [q, k], {"transpose_b": True}),
             (kernels.make_conv2d("relu", add_input=True), [img, cw, cb, res], conv_attrs)]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        if not parallel.ENABLED:                            # the default: torch keeps its threads
            with parallel.intra_op():
                assert parallel.current() is None and torch.get_num_threads() == 2
        monkeypatch.setattr(parallel, "ENABLED", True)      # FORGE_FE_DEVICE_POOL=1
        for fn, ins, attrs in cases:
            whole = fn(ins, attrs)
            with parallel.intra_op():
                assert torch.get_num_threads() == 1          # torch itself runs on one thread meanwhile
                split = fn(ins, attrs)
            assert torch.equal(split, whole)
        assert len(runs) == len(cases) and min(runs) >= 2
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)


def test_device_pool_reraises_a_pieces_error():
    from forge_fe.device import parallel
    pool = parallel.SplitPool(2)

    def piece(i):
        if i == 3:
            raise ValueError("piece 3")
    with pytest.raises(ValueError, match="piece 3"):
        pool.run(4, piece)
    done = []
    pool.run(5, done.append)                               # the pool still works afterwards
    assert sorted(done) == [0, 1, 2, 3, 4]


class MLP(nn.Module):
    """GPT-2's (tanh) and BERT's (erf) MLP: a linear, its gelu, a linear; `w` as an activation."""

    def __init__(self, approximate):
        super().__init__()
        self.fc, self.proj, self.approximate = nn.Linear(16, 64), nn.Linear(64, 16), approximate

    def forward(self, x, w):
        h = F.gelu(self.fc(x), approximate=self.approximate)
        return self.proj(h) + F.gelu(x @ w, approximate=self.approximate).sum(-1, keepdim=True)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_runs_as_the_epilogue_of_the_product_of_a_weight(approximate):
    """linear -> gelu is one oneDNN kernel (the gelu a post-op) when the weight is stable, with
    torch's results, NaN and infinities included; a product of two activations keeps its gelu."""
    torch.manual_seed(0)
    model = MLP(approximate).eval()
    x, w = torch.randn(2, 5, 16), torch.randn(16, 8)
    cm = forge_fe.compile(model, [x, w])
    steps = [s.op.name for p in cm.executor.programs for s in p.steps]
    assert steps.count("ttir.linear+ttir.gelu") == 1 and steps.count("ttir.gelu") == 1
    forge_fe.verify([x, w], model, cm)
    x[0, 0, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    x[1, 2, 0] = float("inf")
    torch.testing.assert_close(cm(x, w), model(x, w), rtol=1e-4, atol=1e-4, equal_nan=True)


class SwiGLUBlock(nn.Module):
    """Llama's MLP with its residual: x + down(silu(gate(x)) * up(x))."""

    def __init__(self):
        super().__init__()
        self.gate, self.up = nn.Linear(16, 64, bias=False), nn.Linear(16, 64, bias=False)
        self.down = nn.Linear(64, 16)

    def forward(self, x):
        return x + self.down(F.silu(self.gate(x)) * self.up(x))


def _fused_steps(cm):
    return sorted(s.op.name for p in cm.executor.programs for s in p.steps if "+" in s.op.name)


def test_silu_multiply_and_residual_add_run_as_epilogues_of_the_products():
    """gate -> silu, up -> * silu(gate) and down -> + x are each one oneDNN kernel, with torch's
    results, NaN and infinities included."""
    torch.manual_seed(0)
    model = SwiGLUBlock().eval()
    x = torch.randn(2, 5, 16)
    cm = forge_fe.compile(model, [x])
    fused = [name.split("+") for name in _fused_steps(cm)]
    assert {product for product, _ in fused} <= {"ttir.matmul", "ttir.linear"}, fused
    assert sorted(epilogue for _, epilogue in fused) == ["ttir.add", "ttir.multiply", "ttir.silu"], fused
    forge_fe.verify([x], model, cm)
    x[0, 0, :3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    x[1, 2, 0] = float("inf")
    torch.testing.assert_close(cm(x), model(x), rtol=1e-4, atol=1e-4, equal_nan=True)


def test_epilogues_never_skip_a_rounding_the_device_does():
    """In bfloat16 the device rounds a product's result before an add or multiply reads it, but its
    packer applies silu to the fp32 result: only the silu stays fused."""
    torch.manual_seed(0)
    model = SwiGLUBlock().eval()
    x = torch.randn(2, 5, 16)
    cm = forge_fe.compile(model, [x], compiler_cfg=forge_fe.CompilerConfig(
        default_df_override=forge_fe.DataFormat.Float16_b))
    fused = _fused_steps(cm)
    assert len(fused) == 1 and fused[0].endswith("+ttir.silu"), fused
