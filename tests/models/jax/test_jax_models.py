"""JAX/Flax architectures of the model matrix: Flax (linen and nnx) modules with random
parameters, compiled as JAX callables (the module applied to its variables) and compared
with JAX's own outputs."""
import functools

import numpy as np
import pytest

from forge_fe.tools import matrix
from forge_fe.tools.matrix import MatrixCase

pytest.importorskip("flax")


def _applied(module, *inputs):
    """(module.apply bound to random variables, inputs as numpy).

    Variables get their shapes from jax.eval_shape(module.init) and random values from numpy:
    running Flax's initializers costs an XLA compile of the whole init graph (10-20 s here).
    Kernels ~ N(0, 1/fan_in); norm scales 1 + N(0, 0.1); running variances U(0.5, 1.5); other vectors N(0, 0.1)."""
    import jax
    import jax.numpy as jnp
    rng = np.random.default_rng(0)

    def fill(path, spec):
        name, shape = jax.tree_util.keystr(path), spec.shape
        if name.endswith("['var']"):
            value = rng.uniform(0.5, 1.5, shape)
        elif len(shape) == 1:
            value = (1.0 if name.endswith("['scale']") else 0.0) + 0.1 * rng.standard_normal(shape)
        else:
            value = rng.standard_normal(shape) / np.sqrt(np.prod(shape[:-1]))
        return jnp.asarray(value, dtype=spec.dtype)
    specs = jax.eval_shape(module.init, jax.random.PRNGKey(0), *inputs)
    variables = jax.tree_util.tree_map_with_path(fill, specs)
    return functools.partial(module.apply, variables), [np.asarray(x) for x in inputs]


def _normal(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype("float32")


def _tokens(shape, vocab, seed=0):
    return np.random.default_rng(seed).integers(0, vocab, shape).astype("int32")


def mlp(size):
    """flax.nnx MLP (the nnx module itself is the callable)."""
    from flax import nnx
    d, hidden, depth = (32, 64, 3) if size == "push" else (784, 2048, 6)

    class MLP(nnx.Module):
        def __init__(self, rngs):
            dims = [d] + [hidden] * depth
            self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(dims, dims[1:])])
            self.head = nnx.Linear(hidden, 10, rngs=rngs)

        def __call__(self, x):
            for layer in self.layers:
                x = nnx.gelu(layer(x))
            return self.head(x)
    return MLP(nnx.Rngs(0)), [_normal((2, d))]


def _linen():
    import flax.linen as nn
    return nn


def resnet(size):
    """ResNet with basic blocks and inference-mode BatchNorm (NHWC, as Flax is)."""
    nn = _linen()
    widths, image = ((8, 16), 32) if size == "push" else ((64, 128, 256, 512), 224)

    class Block(nn.Module):
        width: int
        stride: int

        @nn.compact
        def __call__(self, x):
            norm = functools.partial(nn.BatchNorm, use_running_average=True)
            y = nn.relu(norm()(nn.Conv(self.width, (3, 3), self.stride, use_bias=False)(x)))
            y = norm()(nn.Conv(self.width, (3, 3), use_bias=False)(y))
            if x.shape != y.shape:
                x = norm()(nn.Conv(self.width, (1, 1), self.stride, use_bias=False)(x))
            return nn.relu(x + y)

    class ResNet(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.relu(nn.BatchNorm(use_running_average=True)(nn.Conv(widths[0], (7, 7), 2, use_bias=False)(x)))
            x = nn.max_pool(x, (3, 3), (2, 2), padding="SAME")
            for i, w in enumerate(widths):
                x = Block(w, 1 if i == 0 else 2)(Block(w, 1)(x) if size != "push" else x)
            return nn.Dense(10)(x.mean((1, 2)))
    return _applied(ResNet(), _normal((1, image, image, 3)))


def _encoder_layer(nn, heads, ff, causal=False):
    class EncoderLayer(nn.Module):
        @nn.compact
        def __call__(self, x):
            mask = nn.make_causal_mask(x[..., 0]) if causal else None
            h = nn.LayerNorm()(x)
            x = x + nn.MultiHeadDotProductAttention(heads)(h, h, mask=mask)
            h = nn.LayerNorm()(x)
            return x + nn.Dense(x.shape[-1])(nn.gelu(nn.Dense(ff)(h)))
    return EncoderLayer


def transformer_encoder(size):
    """Pre-norm encoder over token embeddings with learned positions (BERT-like sizes at nightly)."""
    nn = _linen()
    seq, vocab, d, heads, ff, n = (32, 500, 64, 4, 128, 2) if size == "push" else (128, 30522, 768, 12, 3072, 12)
    Layer = _encoder_layer(nn, heads, ff)

    class Encoder(nn.Module):
        @nn.compact
        def __call__(self, ids):
            x = nn.Embed(vocab, d)(ids) + self.param("pos", nn.initializers.normal(0.02), (seq, d))
            for _ in range(n):
                x = Layer()(x)
            return nn.LayerNorm()(x)
    return _applied(Encoder(), _tokens((1, seq), vocab))


def gpt_decoder(size):
    """Decoder-only: causal self-attention blocks and a tied-embedding LM head (GPT-2 small at nightly)."""
    nn = _linen()
    seq, vocab, d, heads, ff, n = (32, 500, 64, 4, 256, 2) if size == "push" else (128, 50257, 768, 12, 3072, 12)
    Layer = _encoder_layer(nn, heads, ff, causal=True)

    class GPT(nn.Module):
        @nn.compact
        def __call__(self, ids):
            embed = nn.Embed(vocab, d)
            x = embed(ids) + self.param("pos", nn.initializers.normal(0.02), (seq, d))
            for _ in range(n):
                x = Layer()(x)
            return embed.attend(nn.LayerNorm()(x))
    return _applied(GPT(), _tokens((1, seq), vocab))


def vit(size):
    """Vision transformer: patch-embedding conv, class token, encoder, classification head (ViT-B/16 at nightly)."""
    nn = _linen()
    image, patch, d, heads, ff, n = (32, 8, 64, 4, 128, 2) if size == "push" else (224, 16, 768, 12, 3072, 12)
    Layer = _encoder_layer(nn, heads, ff)

    class ViT(nn.Module):
        @nn.compact
        def __call__(self, x):
            import jax.numpy as jnp
            x = nn.Conv(d, (patch, patch), patch)(x)
            x = x.reshape(x.shape[0], -1, d)
            cls = self.param("cls", nn.initializers.normal(0.02), (1, 1, d))
            x = jnp.concatenate([jnp.broadcast_to(cls, (x.shape[0], 1, d)), x], axis=1)
            x = x + self.param("pos", nn.initializers.normal(0.02), (1, x.shape[1], d))
            for _ in range(n):
                x = Layer()(x)
            return nn.Dense(10)(nn.LayerNorm()(x)[:, 0])
    return _applied(ViT(), _normal((1, image, image, 3)))


def mixer(size):
    """MLP-Mixer: token-mixing and channel-mixing MLPs over image patches (transposes between them)."""
    nn = _linen()
    image, patch, d, tokens_mlp, channels_mlp, n = (32, 8, 64, 32, 128, 2) if size == "push" else \
        (224, 16, 512, 256, 2048, 8)

    class Mixer(nn.Module):
        @nn.compact
        def __call__(self, x):
            x = nn.Conv(d, (patch, patch), patch)(x)
            x = x.reshape(x.shape[0], -1, d)
            for _ in range(n):
                y = nn.LayerNorm()(x).swapaxes(1, 2)
                y = nn.Dense(x.shape[1])(nn.gelu(nn.Dense(tokens_mlp)(y)))
                x = x + y.swapaxes(1, 2)
                x = x + nn.Dense(d)(nn.gelu(nn.Dense(channels_mlp)(nn.LayerNorm()(x))))
            return nn.Dense(10)(nn.LayerNorm()(x).mean(1))
    return _applied(Mixer(), _normal((1, image, image, 3)))


def jitted(model, inputs):
    """JAX's own output, jit-compiled (eager Flax dispatches op by op and is slow)."""
    import jax
    return jax.jit(model)(*inputs)


CASES = [
    MatrixCase("mlp", "jax", "MLP (flax.nnx)", mlp, reference=jitted),
    MatrixCase("resnet", "jax", "CNN (flax.linen ResNet, BatchNorm)", resnet, reference=jitted,
               formats=("Float16_b", "Bfp8_b weights")),
    MatrixCase("transformer_encoder", "jax", "encoder (flax.linen)", transformer_encoder, reference=jitted),
    MatrixCase("gpt_decoder", "jax", "decoder-only (flax.linen, causal mask, tied head)", gpt_decoder,
               reference=jitted),
    MatrixCase("vit", "jax", "vision transformer (flax.linen)", vit, reference=jitted),
    MatrixCase("mlp_mixer", "jax", "MLP-Mixer (flax.linen)", mixer, reference=jitted),
]


@pytest.mark.parametrize("case", matrix.pytest_params(CASES, "push"))
def test_push(case):
    matrix.check(case, "push")


@pytest.mark.parametrize("case,data_format", matrix.pytest_format_params(CASES))
def test_data_format(case, data_format):
    matrix.check(case, "push", data_format)


@pytest.mark.parametrize("case", matrix.pytest_params(CASES, "nightly"))
def test_nightly(case):
    matrix.check(case, "nightly")
