"""Transformer rewrites: grouped-query matmuls without copies of K/V (passes.attention.group_kv_heads),
torch's all-masked-row guard as one reduction (passes.fuse.fold_masked_row_test), RoPE as one op
(passes.fuse.fuse_rotary_embedding), and matmuls that take their operands' batch dims and K^T as
they are (passes.post_initial.fold_reshapes_into_matmul / fold_transpose_into_matmul), and the
projections of one activation as one product (passes.post_initial.fuse_sibling_matmuls)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import forge_fe


def _ops(cm):
    return [o for p in cm.binary.programs for o in p.ops]


def _shape(cm, op, i):
    prog = next(p for p in cm.binary.programs if op in p.ops)
    return list(prog.tensors[op.inputs[i]].shape)


def repeat_kv(x, r):
    """transformers' repeat_kv: [B, G, S, D] -> [B, G*R, S, D], query head h reading KV head h // R."""
    b, g, s, d = x.shape
    return x[:, :, None, :, :].expand(b, g, r, s, d).reshape(b, g * r, s, d)


class GQA(nn.Module):
    """Llama's attention core after the projections: 8 query heads over 2 KV heads, an additive mask."""

    def __init__(self, repeat=4):
        super().__init__()
        self.repeat = repeat

    def forward(self, q, k, v, mask):
        k, v = repeat_kv(k, self.repeat), repeat_kv(v, self.repeat)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _inputs(b=2, m=3, s=16, g=2, r=4, d=8, masked_row=False):
    torch.manual_seed(0)
    q, k, v = torch.randn(b, g * r, m, d), torch.randn(b, g, s, d), torch.randn(b, g, s, d)
    mask = torch.zeros(b, 1, m, s)
    mask[..., s // 2:] = torch.finfo(torch.float32).min       # padding hidden the transformers way
    if masked_row:
        mask[1, 0, 2, :] = float("-inf")                       # a row with nothing to attend to
    return [q, k, v, mask]


@pytest.mark.parametrize("m", [1, 3])     # a decode step (one query row) and a prefill
def test_grouped_query_attention_multiplies_each_kv_head_once(m):
    xs = _inputs(m=m)
    model = GQA().eval()
    cm = forge_fe.compile(model, xs)
    ops = _ops(cm)
    assert "ttir.broadcast" not in [o.name for o in ops]      # no repeated copy of K or V
    mms = [o for o in ops if o.name == "ttir.matmul"]
    assert len(mms) == 2
    # The 4 query heads of a group are 4*m rows of one matmul against that group's K^T, then V.
    assert sorted(_shape(cm, o, 0) for o in mms) == sorted([[4, 4 * m, 8], [4, 4 * m, 16]])
    # ... against that group's K (read transposed, as cached) and V, each [groups*batch, S, D]
    assert [_shape(cm, o, 1) for o in mms] == [[4, 16, 8], [4, 16, 8]]
    assert [bool(o.attrs["transpose_b"]) for o in mms] == [True, False]
    forge_fe.verify(xs, model, cm)


def test_fully_masked_row_gives_what_torch_gives_with_one_reduction():
    xs = _inputs(masked_row=True)
    model = GQA().eval()
    cm = forge_fe.compile(model, xs)
    names = [o.name for o in _ops(cm)]
    assert "ttir.logical_not" not in names and names.count("ttir.max") == 1
    want, got = model(*xs), cm(*xs)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, equal_nan=True)
    assert torch.equal(got[1, 0, 2], torch.zeros(8))           # torch's _safe_softmax: zeros, not NaN


class AllEqual(nn.Module):
    """The guard's shape with another constant: all(x == c) is not max(x) == c unless c = -inf."""

    def __init__(self, c):
        super().__init__()
        self.c = c

    def forward(self, x):
        hit = torch.logical_not(torch.logical_not(x == self.c).to(torch.int8).amax(-1, keepdim=True).bool())
        return torch.where(hit, torch.zeros_like(x), x)


def test_all_equal_test_with_a_finite_constant_is_left_alone():
    x = torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, -1.0, -1.0]])
    model = AllEqual(0.0).eval()
    cm = forge_fe.compile(model, [x])
    assert "ttir.logical_not" in [o.name for o in _ops(cm)]
    torch.testing.assert_close(cm(x), model(x))


class RepeatAlongSequence(nn.Module):
    """A broadcast before a batched matmul that repeats rows, not heads: not a KV-head repeat."""

    def forward(self, q, k):
        b, g, s, d = k.shape
        k = k[:, :, :, None, :].expand(b, g, s, 2, d).reshape(b, g, 2 * s, d)
        return q @ k.transpose(-1, -2)


def test_repeat_along_another_axis_is_left_alone():
    torch.manual_seed(0)
    q, k = torch.randn(2, 2, 3, 8), torch.randn(2, 2, 5, 8)
    model = RepeatAlongSequence().eval()
    cm = forge_fe.compile(model, [q, k])
    assert "ttir.broadcast" in [o.name for o in _ops(cm)]
    forge_fe.verify([q, k], model, cm)


def rotate_half(x):
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


class RoPE(nn.Module):
    """transformers' apply_rotary_pos_emb on projected queries and keys; `swap` rotates the other way."""

    def __init__(self, swap=False):
        super().__init__()
        self.q, self.k, self.swap = nn.Linear(16, 32), nn.Linear(16, 16), swap

    def forward(self, x, cos, sin):
        b, s, _ = x.shape
        q = self.q(x).reshape(b, s, 4, 8).transpose(1, 2)
        k = self.k(x).reshape(b, s, 2, 8).transpose(1, 2)
        rot = (lambda t: torch.cat((t[..., 4:], -t[..., :4]), dim=-1)) if self.swap else rotate_half
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        return q * cos + rot(q) * sin, k * cos + rot(k) * sin


def _rope_inputs(b=2, s=5):
    torch.manual_seed(0)
    pos = torch.arange(s, dtype=torch.float32)[None, :, None] + torch.tensor([0.0, 3.0])[:b, None, None]
    freqs = pos * (1.0 / 10000 ** (torch.arange(0, 8, 2) / 8))
    emb = torch.cat((freqs, freqs), dim=-1)                        # [b, s, 8]: positions differ per row
    return [torch.randn(b, s, 16), emb.cos(), emb.sin()]


def test_rotary_embedding_becomes_one_op_per_tensor_and_matches_torch():
    xs = _rope_inputs()
    model = RoPE().eval()
    cm = forge_fe.compile(model, xs)
    names = [o.name for o in _ops(cm)]
    assert names.count("ttir.rotary_embedding") == 2
    assert not {"ttir.neg", "ttir.concat", "ttir.slice_static"} & set(names)
    assert '"ttir.rotary_embedding"' in cm.ttir
    forge_fe.verify(xs, model, cm)


def test_rotation_the_other_way_is_left_alone():
    xs = _rope_inputs()
    model = RoPE(swap=True).eval()
    cm = forge_fe.compile(model, xs)
    assert "ttir.rotary_embedding" not in [o.name for o in _ops(cm)]
    forge_fe.verify(xs, model, cm)


class Projections(nn.Module):
    """Linears on a 3-D activation (exported as view -> mm -> view), one with a bias, and scores
    Q @ K^T / sqrt(d) of computed Q and K."""

    def __init__(self):
        super().__init__()
        self.q, self.k = nn.Linear(16, 16, bias=False), nn.Linear(16, 16)

    def forward(self, x):
        b, s, _ = x.shape
        q = self.q(x).reshape(b, s, 2, 8).transpose(1, 2)
        k = self.k(x).reshape(b, s, 2, 8).transpose(1, 2)
        return q @ k.transpose(-1, -2) / 8 ** 0.5


def test_projections_and_scores_need_no_reshape_or_transpose_copies():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 16)
    model = Projections().eval()
    cm = forge_fe.compile(model, [x])
    ops = _ops(cm)
    proj = [o for o in ops if o.name in ("ttir.matmul", "ttir.linear") and len(_shape(cm, o, 1)) == 2]
    assert len(proj) == 2 and all(_shape(cm, o, 0) == [2, 5, 16] for o in proj)     # the batch dims as they are
    scores = [o for o in ops if o.name == "ttir.matmul" and len(_shape(cm, o, 1)) > 2]
    assert len(scores) == 1 and scores[0].attrs["transpose_b"] and _shape(cm, scores[0], 1)[-2:] == [5, 8]
    # per call, what moves data is the head split of q and k (a permute each): no transpose of K, no
    # flattening (the weights' transposes run once, in the const-eval program)
    per_call = [(p, o) for p in cm.binary.programs if not p.private for o in p.ops]
    assert [o.name for _, o in per_call].count("ttir.permute") == 2
    assert not [o for p, o in per_call if o.name == "ttir.reshape" and len(p.tensors[o.outputs[0]].shape) == 2]
    forge_fe.verify([x], model, cm)


class Siblings(nn.Module):
    """Attention's q/k/v projections (with biases, GQA widths) and SwiGLU's gate/up, each group
    reading one activation: what passes.post_initial.fuse_sibling_matmuls turns into one product."""

    def __init__(self):
        super().__init__()
        self.q, self.k, self.v = nn.Linear(16, 16), nn.Linear(16, 8), nn.Linear(16, 8)
        self.gate, self.up, self.down = (nn.Linear(16, 32, bias=False), nn.Linear(16, 32, bias=False),
                                         nn.Linear(32, 16, bias=False))

    def forward(self, x):
        h = self.q(x).sum(-1, keepdim=True) + self.k(x).mean(-1, keepdim=True) * self.v(x).amax(-1, keepdim=True)
        return self.down(F.silu(self.gate(x)) * self.up(x)) + h


def _weight_products(cm):
    """(op name, [K, N]) of every per-call product with a 2-D weight operand."""
    return sorted((o.name, list(p.tensors[o.inputs[1]].shape)) for p in cm.binary.programs if not p.private
                  for o in p.ops if o.name in ("ttir.matmul", "ttir.linear") and len(p.tensors[o.inputs[1]].shape) == 2)


def test_one_row_products_of_one_activation_run_as_one_product_on_concatenated_weights():
    torch.manual_seed(0)
    model, x = Siblings().eval(), torch.randn(1, 1, 16)          # a decode step's one row
    cm = forge_fe.compile(model, [x])
    assert _weight_products(cm) == [("ttir.linear", [16, 32]), ("ttir.matmul", [16, 64]), ("ttir.matmul", [32, 16])]
    concats = [p.private for p in cm.binary.programs for o in p.ops if o.name == "ttir.concat"]
    assert concats and all(concats)            # weights and biases concatenated once, at load time
    forge_fe.verify([x], model, cm)


def test_many_row_products_stay_apart():
    """A prefill's or encoder's products are compute-bound: fused they measured no faster."""
    torch.manual_seed(0)
    model, x = Siblings().eval(), torch.randn(2, 5, 16)
    cm = forge_fe.compile(model, [x])
    assert len(_weight_products(cm)) == 6
    forge_fe.verify([x], model, cm)


class Apart(nn.Module):
    """Products of one activation that must not share a weight: a computed one and a bias-less one
    next to a biased one."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(16, 8), nn.Linear(16, 8, bias=False)

    def forward(self, x, w):
        return self.a(x) + self.b(x) + x @ w


def test_products_that_cannot_share_a_weight_stay_apart():
    torch.manual_seed(0)
    model, xs = Apart().eval(), [torch.randn(1, 16), torch.randn(16, 8)]
    cm = forge_fe.compile(model, xs)
    assert len(_weight_products(cm)) == 3
    forge_fe.verify(xs, model, cm)


def test_trained_weights_are_not_concatenated():
    """Training updates each weight alone: concatenating them would copy every step."""
    torch.manual_seed(0)
    model, x = Siblings(), torch.randn(1, 1, 16)
    cm = forge_fe.compile(model, [x], training=True)
    forward = next(p for p in cm.binary.programs if p.name.endswith("_forward"))
    assert len([o for o in forward.ops if o.name in ("ttir.matmul", "ttir.linear")]) == 6
    assert not [o for p in cm.binary.programs for o in p.ops if o.name in ("ttir.concat", "ttir.slice_static")]
