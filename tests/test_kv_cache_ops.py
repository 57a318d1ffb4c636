"""torch index writes (`x[:, :, idx] = v`, `index_copy`) import exactly, and the KV-cache forms run
on the device as ttir.fill_cache / ttir.update_cache without touching tensors still read later."""
import pytest
import torch

import forge_fe


class IndexPut(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x, v, i, j):
        y = x.clone()
        self.fn(y, v, i, j)
        return y * 1.0


WRITES = {   # torch's indexing rule per form; TVM 0.27 refused or mis-broadcast all but the last
    "leading_slice": (lambda y, v, i, j: y.__setitem__((slice(None), i), v), (2, 5, 3, 4), (2, 2, 3, 4)),
    "two_leading_slices": (lambda y, v, i, j: y.__setitem__((slice(None), slice(None), i), v), (2, 3, 5, 4),
                           (2, 3, 2, 4)),
    "index_copy": (lambda y, v, i, j: y.index_copy_(1, i, v), (2, 5, 3), (2, 2, 3)),
    "trailing_dims_omitted": (lambda y, v, i, j: y.__setitem__(i, v), (5, 3, 4), (2, 3, 4)),
    "split_indices": (lambda y, v, i, j: y.__setitem__((i, slice(None), j), v), (5, 3, 4), (2, 3)),
    "all_dims": (lambda y, v, i, j: y.__setitem__((i, j), v), (5, 4), (2,)),
}


@pytest.mark.parametrize("form", sorted(WRITES))
def test_index_put_forms_match_torch(form):
    fn, shape, vshape = WRITES[form]
    g = torch.Generator().manual_seed(0)
    x, v = torch.randn(shape, generator=g), torch.randn(vshape, generator=g)
    i, j = torch.tensor([3, 0]), torch.tensor([1, 2])
    model = IndexPut(fn)
    cm = forge_fe.compile(model, [x, v, i, j])
    torch.testing.assert_close(cm(x, v, i, j), model(x, v, i, j), rtol=0, atol=0)


class CacheWrite(torch.nn.Module):
    """A decode-style cache write whose old cache is read again afterwards."""

    def forward(self, cache, new, pos):
        updated = cache.index_copy(2, pos, new)
        return updated, cache * 2.0


def test_cache_write_runs_on_device_and_keeps_inputs_intact():
    cache, new, pos = torch.randn(1, 2, 8, 4), torch.randn(1, 2, 1, 4), torch.tensor([5])
    before = cache.clone()
    cm = forge_fe.compile(CacheWrite(), [cache, new, pos])
    ops = [op.name for p in cm.binary.programs for op in p.ops]
    assert "ttir.update_cache" in ops and all(r["where"] == "device" for r in cm.report.placement
                                              if r["op"] == "relax.index_put")
    updated, doubled = cm(cache, new, pos)
    want_updated, want_doubled = CacheWrite()(before, new, pos)
    torch.testing.assert_close(updated, want_updated, rtol=0, atol=0)
    torch.testing.assert_close(doubled, want_doubled, rtol=0, atol=0)
    assert torch.equal(cache, before), "the caller's cache is not written unless donated"


def test_donated_cache_is_written_in_place():
    from forge_fe.device.program import DeviceProgram
    cache, new, pos = torch.randn(1, 2, 8, 4), torch.randn(1, 2, 1, 4), torch.tensor([5])

    class Write(torch.nn.Module):
        def forward(self, cache, new, pos):
            return cache.index_copy(2, pos, new)

    cm = forge_fe.compile(Write(), [cache, new, pos])
    (prog,) = [p for p in cm.binary.programs if not p.private]
    step = next(s for s in cm.binary.plan if s.kind == "device" and cm.binary.programs[s.index] is prog)
    device = DeviceProgram(prog)
    position = {n: k for k, n in enumerate(step.inputs)}
    device.donate([position[cm.binary.inputs[0].name]])
    env = {d.name: x for d, x in zip(cm.binary.inputs, [cache, new, pos])}
    (out,) = device.run([env[n] for n in step.inputs])
    assert out is cache and torch.equal(cache[:, :, 5], new[:, :, 0])


class RowGather(torch.nn.Module):
    """How a prefill picks its logits row (transformers' logits_to_keep as a tensor): x[:, idx, :]."""

    def forward(self, x, idx):
        return x[:, idx, :] * 2.0, x.index_select(2, idx)


def test_gather_along_any_axis_runs_on_the_device():
    x, idx = torch.randn(2, 7, 5), torch.tensor([4, 1])
    cm = forge_fe.compile(RowGather(), [x, idx])
    assert all(r["where"] == "device" for r in cm.report.placement), cm.report.summary()
    for got, want in zip(cm(x, idx), RowGather()(x, idx)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)
