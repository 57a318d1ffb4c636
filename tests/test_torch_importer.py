"""tvm_ext.frontend.exported_program: the fixes to TVM's PyTorch importer, each on the smallest program
that shows it, compared with torch's own result (values, shapes and dtypes)."""
import pytest
import torch
import torch.nn as nn

import forge_fe


def compiled_matches(model, inputs):
    """Compile, run, and compare every output with torch exactly in shape and dtype, closely in value."""
    model = model.eval()
    cm = forge_fe.compile(model, inputs)
    ours, ref = cm(*inputs), model(*inputs)
    ours, ref = (ours, ref) if isinstance(ref, tuple) else ((ours,), (ref,))
    for a, b in zip(ours, ref):
        assert a.shape == b.shape and a.dtype == b.dtype, (a.shape, b.shape, a.dtype, b.dtype)
        assert torch.allclose(a.float(), b.float(), rtol=1e-4, atol=1e-5), (a, b)
    return cm


class CatOntoEmpty(nn.Module):
    """The pattern of transformers' DynamicCache: a layer's keys start as torch.tensor([]) and the
    first step is concatenated onto them (torch.cat skips 1-D tensors of shape (0,))."""

    def __init__(self):
        super().__init__()
        self.start = torch.tensor([])

    def forward(self, k):
        return torch.cat([self.start, k], dim=-2) * 2


def test_cat_skips_empty_vectors_like_torch():
    compiled_matches(CatOntoEmpty(), [torch.randn(1, 2, 5, 4)])


def test_transformers_decoder_with_default_cache_and_attention_imports():
    """The issue's case: a decoder built with AutoModel.from_config and every default (sdpa attention,
    use_cache=True, the library's mask code) failed at import with 'Concat expects all input tensors
    to have same ndim'."""
    transformers = pytest.importorskip("transformers")
    from forge_fe.zoo import HiddenStates
    cfg = transformers.LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                                   num_key_value_heads=2, vocab_size=100, max_position_embeddings=32)
    assert cfg.use_cache
    torch.manual_seed(0)
    model = HiddenStates(transformers.AutoModel.from_config(cfg)).eval()
    ids = torch.randint(0, 100, (1, 8))
    forge_fe.verify([ids], model, forge_fe.compile(model, [ids]))


class MixedIndex(nn.Module):
    """Index tensors with full slices between and around them (nn.functional.unfold decomposes so)."""

    def forward(self, x):
        i = torch.tensor([[0], [2], [1]])
        j = torch.tensor([1, 0])
        return x[:, i, :, j] + 0, x[:, :, i, j] * 1, x[j, :, i] - 0


def test_indexing_with_slices_follows_numpy_rules():
    # adjacent index tensors keep their place; separated ones move the broadcast dims to the front
    compiled_matches(MixedIndex(), [torch.randn(2, 3, 4, 5)])


class NegativeIndexAfterSlices(nn.Module):
    """Falcon's fused QKV split: key and value heads picked from the end (x[..., [-2], :]), and a
    run-time index tensor holding negative indices."""

    def forward(self, x, idx):
        return x[..., [-2], :] * 2, x[:, [-1, 0]] + 1, x[:, :, idx] - 1


def test_negative_indices_count_from_the_end_like_torch():
    compiled_matches(NegativeIndexAfterSlices(), [torch.randn(2, 3, 4, 5), torch.tensor([-1, 0, -4, 2])])


def test_unfold():
    compiled_matches(nn.Unfold(kernel_size=(3, 1), padding=(1, 0)), [torch.randn(1, 8, 6, 1)])


class AssertsOnValues(nn.Module):
    """transformers' XLM checks `lengths.max().item() <= slen`: it exports as _local_scalar_dense -> le ->
    _assert_scalar (torch._check is the spelling torch.export accepts everywhere)."""

    def forward(self, ids):
        lengths = (ids != 0).sum(dim=1)
        torch._check(lengths.max().item() <= ids.shape[1])
        return ids.float() * 2 + lengths[:, None]


def test_runtime_value_assertions_are_dropped():
    compiled_matches(AssertsOnValues(), [torch.randint(1, 9, (2, 6))])


class Divisions(nn.Module):
    def forward(self, x, i):
        return (x / 3, i // 2, torch.div(i, 3, rounding_mode="floor"), i / 2,
                torch.div(i, -3, rounding_mode="trunc"), torch.floor_divide(i, 4))


def test_division_computes_in_torchs_result_dtype():
    compiled_matches(Divisions(), [torch.randn(2, 5), torch.arange(-5, 5).reshape(2, 5)])


class FloatOfInt(nn.Module):
    def forward(self, i):
        return torch.log(i + 1), torch.sqrt(i), torch.amax(i.float() * 1.5, dim=(1,), keepdim=True)


def test_float_valued_ops_on_integers_and_amax():
    compiled_matches(FloatOfInt(), [torch.arange(1, 13).reshape(3, 4)])


class Histogram(nn.Module):
    def forward(self, x):
        return torch.histc(x, bins=5, min=-1.0, max=1.5)


def test_histc_counts_like_torch():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.2, 0.99, 1.0, 1.5, 1.6, 0.5, 0.5])   # both ends, outside, inside
    compiled_matches(Histogram(), [x])


def test_grouped_mm_fallback_multiplies_each_group_by_its_expert():
    pytest.importorskip("transformers")
    import transformers.integrations.moe  # noqa: F401  (registers torch.ops.transformers.grouped_mm_fallback)

    class Grouped(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(3, 4, 5))

        def forward(self, x, offs):
            return torch.ops.transformers.grouped_mm_fallback(x, self.w, offs)
    torch.manual_seed(0)
    # rows 0-1 -> expert 0, none -> expert 1, rows 2-4 -> expert 2, row 5 past the last offset -> zeros
    compiled_matches(Grouped(), [torch.randn(6, 4), torch.tensor([2, 2, 5], dtype=torch.int32)])
