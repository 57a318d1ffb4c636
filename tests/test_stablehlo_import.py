"""tvm_ext.frontend.from_stablehlo: each op family jax emits, imported and built with tvm.compile,
against jax's own output; the Relax spellings the device needs; every user-facing error."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tvm
from jax import lax
from tvm import relax

from forge_fe.errors import FrontendError
from tvm_ext.frontend import from_stablehlo

# fp32 kernels on both sides; differences are rounding order only.
RTOL = ATOL = 1e-4


def export_text(f, *xs):
    return jax.export.export(jax.jit(f))(*[jax.ShapeDtypeStruct(x.shape, x.dtype) for x in xs]).mlir_module()


def run_tvm(mod, params, *xs):
    mod = relax.transform.BindParams("main", params)(mod)
    ex = tvm.compile(mod, target=tvm.target.Target({"kind": "llvm"}))
    vm = relax.VirtualMachine(ex, tvm.cpu())
    out = vm["main"](*[tvm.runtime.tensor(np.require(x, requirements="C")) for x in xs])

    def flat(o):
        if isinstance(o, tvm.runtime.Tensor):
            return [o.numpy()]
        return [y for item in o for y in flat(item)]

    return flat(out)


def check(f, *xs, rtol=RTOL, atol=ATOL):
    """Import f's StableHLO, run it with TVM, compare every output with jax's; return the module."""
    mod, params = from_stablehlo(export_text(f, *xs))
    got = run_tvm(mod, params, *xs)
    want = [np.asarray(w) for w in jax.tree_util.tree_leaves(f(*[jnp.asarray(x) for x in xs]))]
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"output {i}: {g.shape} vs {w.shape}"
        assert g.dtype == w.dtype, f"output {i}: {g.dtype} vs {w.dtype}"
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"output {i}")
    return mod


def relax_ops(mod) -> set[str]:
    ops = set()

    def visit(e):
        if isinstance(e, relax.Call) and isinstance(e.op, tvm.ir.Op):
            ops.add(e.op.name)

    relax.analysis.post_order_visit(mod["main"].body, visit)
    return ops


@pytest.fixture
def x45(rng):
    return rng.standard_normal((4, 5)).astype(np.float32)


# --------------------------------------------------------------------------
# op families
# --------------------------------------------------------------------------


def test_elementwise_math_compare_select_clamp_convert(x45):
    def f(x):
        a = jnp.exp(x) + jnp.log(jnp.abs(x) + 1) + jnp.tanh(x) + jax.nn.sigmoid(x) + jnp.sin(x) * jnp.cos(x)
        b = jnp.sqrt(jnp.abs(x)) + lax.rsqrt(jnp.abs(x) + 1) + jnp.floor(x) + jnp.ceil(x) + jnp.sign(x)
        c = jnp.where(x > 0, x, -x) + jnp.clip(x, -0.5, 0.5) + jnp.maximum(x, 0.1) / (jnp.minimum(x, 2.0) + 3)
        d = jnp.round(x * 2) + jnp.expm1(x) + jnp.log1p(jnp.abs(x)) + x ** 3 + jnp.power(jnp.abs(x), 1.5)
        e = (x > 0.5).astype(jnp.int32) + (x * 10).astype(jnp.int32) % 3
        return a, b, c, d, e, jnp.logical_and(x > 0, x < 1), jax.scipy.special.erf(x), jax.nn.gelu(x)
    check(f, x45)


def test_dot_general_forms_become_matmul(rng):
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    b = rng.standard_normal((2, 4, 5)).astype(np.float32)
    w = rng.standard_normal((4, 6)).astype(np.float32)
    v = rng.standard_normal((6, 4)).astype(np.float32)

    def f(a, b, w, v):
        return (a @ b,                                   # batched
                a @ w,                                   # Dense on a 3-D input
                jnp.einsum("bik,jk->bij", a, v),         # contracting the rhs's last dim
                jnp.einsum("bij,bkj->bik", a, a),        # batch + transposed rhs
                jnp.einsum("bij,bij->b", a, a))          # contraction over two dims
    mod = check(f, a, b, w, v)
    assert "relax.matmul" in relax_ops(mod)


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_convolution_padding_strides_dilation_groups(rng, layout):
    x = rng.standard_normal((2, 9, 9, 4) if layout == "NHWC" else (2, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, 6)).astype(np.float32)      # HWIO, 2 groups
    dn = (layout, "HWIO", layout)

    def f(x, w):
        conv = lambda **kw: lax.conv_general_dilated(x, w, dimension_numbers=dn, feature_group_count=2, **kw)
        return (conv(window_strides=(1, 1), padding="SAME"),
                conv(window_strides=(2, 1), padding=((1, 2), (0, 1)), rhs_dilation=(2, 1)),
                conv(window_strides=(1, 1), padding=((1, 1), (2, 0)), lhs_dilation=(2, 2)))   # transposed conv
    mod = check(f, x, w, rtol=1e-4, atol=1e-3)
    assert "relax.nn.conv2d" in relax_ops(mod)


def test_conv1d_and_conv3d(rng):
    x1 = rng.standard_normal((2, 10, 3)).astype(np.float32)
    w1 = rng.standard_normal((3, 3, 5)).astype(np.float32)
    x3 = rng.standard_normal((1, 5, 5, 5, 2)).astype(np.float32)
    w3 = rng.standard_normal((2, 2, 2, 2, 3)).astype(np.float32)

    def f(x1, w1, x3, w3):
        return (lax.conv_general_dilated(x1, w1, (1,), "SAME", dimension_numbers=("NWC", "WIO", "NWC")),
                lax.conv_general_dilated(x3, w3, (1, 2, 1), "VALID", dimension_numbers=("NDHWC", "DHWIO", "NDHWC")))
    check(f, x1, w1, x3, w3, atol=1e-3)


def test_reduce_bodies_and_arg_reduce(rng):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)

    def f(x):
        return (x.sum(axis=1), x.max(axis=(0, 2)), x.min(), jnp.prod(x[0], axis=0), x.mean(axis=-1),
                jnp.argmax(x, axis=2), jnp.argmin(x, axis=0), jnp.all(x > -1, axis=1), jnp.any(x > 1),
                jax.nn.softmax(x, axis=-1), jax.nn.logsumexp(x, axis=1))
    check(f, x)


def test_reduce_window_pooling_and_cumsum(rng):
    import flax.linen as nn
    x = rng.standard_normal((2, 8, 8, 3)).astype(np.float32)

    def f(x):
        return (nn.max_pool(x, (2, 2), strides=(2, 2)),
                nn.max_pool(x, (3, 3), strides=(1, 1), padding="SAME"),
                nn.avg_pool(x, (2, 2), strides=(2, 2)),
                nn.avg_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1))),
                lax.reduce_window(x, 0.0, lax.add, (1, 2, 1, 1), (1, 1, 1, 1), "VALID"),
                jnp.cumsum(x, axis=2), jnp.cumprod(x[:, :4], axis=1), lax.cummax(x, axis=2), lax.cummin(x, axis=1))
    mod = check(f, x)
    assert {"relax.nn.max_pool2d", "relax.nn.avg_pool2d", "relax.cumsum"} <= relax_ops(mod)


def test_reduce_precision_rounds_like_bf16_and_f16(x45):
    check(lambda x: (lax.reduce_precision(x, 8, 7), lax.reduce_precision(x, 5, 10), lax.reduce_precision(x, 8, 23)),
          x45 * 100, rtol=0, atol=0)


def test_nan_compares_follow_ieee(x45):
    # x != x is how jnp.isnan / nan_to_num spell it: NaN must compare unequal to itself.
    x = x45.copy()
    x[0, 1] = np.nan
    check(lambda x: (jnp.nan_to_num(x), jnp.isnan(x), x != 0.5, x.astype(bool)), x)


@pytest.mark.parametrize("name", ["conv_transpose", "group_norm", "rms_norm", "self_attention", "resize"])
def test_common_flax_and_jax_layers(rng, name):
    import flax.linen as nn
    x = rng.standard_normal((2, 6, 6, 4)).astype(np.float32)
    layers = {"conv_transpose": nn.ConvTranspose(3, (4, 4), strides=(2, 2), padding="SAME"),
              "group_norm": nn.GroupNorm(num_groups=2), "rms_norm": nn.RMSNorm(),
              "self_attention": nn.MultiHeadDotProductAttention(num_heads=2)}
    if name == "resize":
        check(lambda a: (jax.image.resize(a, (2, 12, 12, 4), "bilinear"),
                         jax.image.resize(a, (2, 3, 12, 4), "nearest")), x)
        return
    layer = layers[name]
    x = x.reshape(2, 36, 4) if name == "self_attention" else x
    variables = layer.init(jax.random.PRNGKey(0), x)
    check(lambda a: layer.apply(variables, a), x, atol=1e-3)


def test_broadcast_reshape_transpose_concat_slice_pad_reverse(rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    v = rng.standard_normal((3,)).astype(np.float32)

    def f(x, v):
        return (x + v[None, :, None], jnp.broadcast_to(v[:, None], (3, 5)), x.reshape(6, 4), x.transpose(2, 0, 1),
                jnp.concatenate([x, x * 2], axis=1), x[:, 1:3, ::2], x[1], x[..., -1],
                jnp.pad(x, ((0, 0), (1, 2), (2, 0)), constant_values=0.5), x[:, ::-1], jnp.flip(x, (0, 2)))
    check(f, x, v)


def test_iota_and_one_hot(rng):
    idx = np.array([0, 3, 1], np.int32)

    def f(i):
        return jax.nn.one_hot(i, 5), jnp.arange(6, dtype=jnp.float32).reshape(2, 3) + i.sum()
    check(f, idx)


def test_dynamic_slice_and_update_slice(x45):
    i = np.array(2, np.int32)

    def f(x, i):
        return (lax.dynamic_slice(x, (i, 1), (2, 3)),             # run-time start: take
                lax.dynamic_slice(x, (3, 4), (2, 3)),             # start past the end is clamped
                lax.dynamic_update_slice(x, jnp.ones((2, 2)), (1, 2)),
                lax.dynamic_slice_in_dim(x, i, 2, axis=0),
                lax.dynamic_update_slice(x, jnp.full((2, 5), 9.0), (i, 0)),     # KV-cache style write
                lax.dynamic_update_slice(x, -jnp.ones((3, 2)), (i, i + 1)))      # clamped into range
    check(f, x45, i)


def test_gather_and_scatter_from_jnp_indexing(x45):
    idx = np.array([3, 0, 2, -1], np.int32)

    def f(x, idx):
        return (x[idx], x[:, idx[:2]], jnp.take(x, idx, axis=1),
                jnp.take_along_axis(x, jnp.argsort(x, axis=1), axis=1),
                x.at[idx[:2]].set(7.0), x.at[idx[:2]].add(x[:2]), x.at[:, idx[:2]].multiply(2.0),
                jnp.sort(x, axis=0))
    check(f, x45, idx)


def test_scatter_drops_out_of_bounds_updates_as_xla_does(x45):
    idx = np.array([1, 9, 2], np.int32)       # 9 is past the end: that update is skipped
    check(lambda x, i: (x.at[i].set(3.0), x.at[i].add(1.0), x.at[i].max(0.5), x.at[:, i].multiply(2.0)), x45, idx)


def test_point_gather_with_several_index_arrays(rng):
    x = rng.standard_normal((3, 4, 5)).astype(np.float32)
    i = np.array([[0, 2], [1, -1]], np.int32)
    j = np.array([[3, 0], [4, 1]], np.int32)
    check(lambda x, i, j: (x[i, j], x[:, i, j], x[i, :, j], x[2, i],
                           x.at[i[0], j[0]].set(5.0), x.at[:, i[1], j[1]].add(1.0)), x, i, j)


def test_embedding_lookup_is_a_take(rng):
    table = rng.standard_normal((50, 8)).astype(np.float32)
    tokens = np.array([[1, 7, 49], [0, 3, 3]], np.int32)
    mod = check(lambda t, ids: t[ids], table, tokens)
    assert "relax.take" in relax_ops(mod)


def test_scan_and_fori_loop_unroll(rng):
    xs = rng.standard_normal((5, 3)).astype(np.float32)

    def f(xs):
        def step(c, x):
            c = jnp.tanh(c * 0.5 + x)
            return c, c.sum()
        carry, ys = lax.scan(step, jnp.zeros(3), xs)
        total = lax.fori_loop(0, 4, lambda i, acc: acc + xs[i] * i, jnp.zeros(3))
        return carry, ys, total
    mod = check(f, xs)
    assert not any("while" in op for op in relax_ops(mod))


def test_cond_and_switch_on_run_time_values(x45):
    def f(x, k):
        a = lax.cond(x.sum() > 0, lambda v: v * 2, lambda v: v - 1, x)
        b = lax.switch(k, [lambda v: v + 1, lambda v: jnp.tanh(v), lambda v: v * v], x)
        return a, b
    for x, k in ((x45, 0), (-np.abs(x45), 1), (np.abs(x45), 7)):     # 7 is out of range: the last branch
        check(f, x, np.array(k, np.int32))


def test_private_calls_are_inlined(x45):
    @jax.jit
    def inner(y):
        return jnp.maximum(y, 0) * 2

    text = export_text(lambda x: inner(inner(x)) + inner(x), x45)
    assert "call @" in text
    mod = check(lambda x: inner(inner(x)) + inner(x), x45)
    assert len(mod.get_global_vars()) == 1


def test_accepts_text_artifact_module_and_exported(x45):
    exported = jax.export.export(jax.jit(lambda x: x * 2))(jax.ShapeDtypeStruct(x45.shape, x45.dtype))
    from jax._src.interpreters import mlir
    from jaxlib.mlir import ir
    ctx = mlir.make_ir_context()
    with ctx:
        module = ir.Module.parse(exported.mlir_module())
    for form in (exported, exported.mlir_module(), exported.mlir_module_serialized, module):
        mod, params = from_stablehlo(form)
        np.testing.assert_allclose(run_tvm(mod, params, x45)[0], x45 * 2)


def test_large_constants_become_params_and_weight_args_are_named(rng):
    table = rng.standard_normal((64, 32)).astype(np.float32)
    x = rng.standard_normal((2, 64)).astype(np.float32)
    w = rng.standard_normal((32, 4)).astype(np.float32)
    text = export_text(lambda x, w: (x @ jnp.asarray(table)) @ w, x, w)
    mod, params = from_stablehlo(text, weights={1: ("dense/kernel", w)}, input_names=["tokens"])
    names = [p.name for p in mod["main"].params]
    assert names[0] == "tokens" and "dense_kernel" in names and len(names) == 3
    const_name = names[2]
    np.testing.assert_array_equal(params[const_name], table)
    np.testing.assert_array_equal(params["dense_kernel"], w)
    np.testing.assert_allclose(run_tvm(mod, params, x)[0], x @ table @ w, rtol=1e-4, atol=1e-4)


def test_bfloat16_constants_small_and_large(rng):
    # numpy's buffer protocol has no bf16: such constants are read from their printed form.
    small = jnp.asarray(np.arange(5) * 0.25 - 0.3, jnp.bfloat16)
    big = jnp.asarray(rng.standard_normal((40, 40)), jnp.bfloat16)
    x = rng.standard_normal((4, 5)).astype(np.float32)

    def f(x):
        y = x.astype(jnp.bfloat16) * jnp.bfloat16(1.5) + small
        return y.astype(jnp.float32), (big[:4, :5] + y).astype(jnp.float32)
    mod, params = from_stablehlo(export_text(f, x))
    (table,) = params.values()
    np.testing.assert_array_equal(table, np.asarray(big))
    for got, want in zip(run_tvm(mod, params, x), f(x)):
        np.testing.assert_array_equal(got, np.asarray(want))


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------


def test_unsupported_ops_are_all_named_with_their_location(x45):
    def f(x):
        return jnp.fft.fft(x).real + lax.population_count(x.astype(jnp.int32)).astype(jnp.float32)
    with pytest.raises(FrontendError) as err:
        from_stablehlo(export_text(f, x45))
    msg = str(err.value)
    assert "[forge_fe:import]" in msg and "stablehlo.fft" in msg and "stablehlo.popcnt" in msg
    assert "test_stablehlo_import.py" in msg      # loc(...) points at the user's line


def test_data_dependent_while_loop_is_refused(x45):
    def f(x):
        return lax.while_loop(lambda c: c.sum() < 100.0, lambda c: c * 2 + 1, x)
    with pytest.raises(FrontendError, match=r"stablehlo.while at loc\(.*trip count depends on run-time values"):
        from_stablehlo(export_text(f, x45))


def test_unparseable_input_and_wrong_type():
    with pytest.raises(FrontendError, match="could not parse the StableHLO module"):
        from_stablehlo("module { this is not mlir }")
    with pytest.raises(FrontendError, match="expects MLIR text"):
        from_stablehlo(42)
