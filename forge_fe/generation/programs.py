"""The two static-shape programs of a decoder LM, as plain torch modules over an explicit KV cache.

`LMStep` wraps a transformers causal LM so that one call is a function of tensors only:

    prefill: (input_ids[B,P], position_ids[B,P], attention_mask[B,S], last[1], k_0, v_0, ...)
             -> (logits[B,1,V] of row `last`, k_0', v_0', ...)
    decode:  (input_ids[B,1], position_ids[B,1], attention_mask[B,S], slot[1], k_0, v_0, ...)
             -> (logits[B,1,V], k_0', v_0', ...)

with every cache tensor k_i/v_i of the fixed shape [B, kv_heads, S, head_dim] (S = max_cache_len).
The model runs its own code: its attention (default attn_implementation), its mask builder
(transformers.masking_utils, which reads the query offset and the kv length from the cache)
and transformers' own `StaticCache`, whose layers we hand the input tensors. A layer writes with
`keys.index_copy_(2, arange(n) + cumulative_length, new)`; we give it a clone to write into, so
torch.export sees a functional index_copy (the cache write), and read the result back as an output.
Prefill writes rows 0..P-1 (its offset is the constant 0: ttir.fill_cache); decode writes the one
row `slot` (ttir.update_cache). Nothing else in the graph depends on the position, so the decode
program is the same for every token.

Cache slots are columns of the (left-padded) prompt: slot j holds the token at column j, so one
`slot` serves every sequence of the batch, and `attention_mask` (over slots) hides padding.
Position ids are per sequence (cumsum of the mask, as transformers' generate computes them).
"""
from __future__ import annotations

import torch

from forge_fe.errors import ForgeError

STAGE = "compile_lm"


def check_causal_lm(model):
    """A transformers decoder-only LM whose generate() we reproduce; anything else is refused here."""
    try:
        from transformers import PreTrainedModel
    except ImportError:     # pragma: no cover - transformers is a dependency of the torch extra
        raise ForgeError(STAGE, "compile_lm needs the transformers package", "pip install transformers")
    if not isinstance(model, PreTrainedModel):
        raise ForgeError(STAGE, f"compile_lm takes a transformers causal LM (e.g. LlamaForCausalLM); got "
                         f"{type(model).__module__}.{type(model).__name__}",
                         "use forge_fe.compile(model, inputs) for a single forward pass of other models")
    config = model.config
    if getattr(config, "is_encoder_decoder", False) or not model.can_generate():
        raise ForgeError(STAGE, f"{type(model).__name__} is not a decoder-only causal LM "
                         f"({'encoder-decoder' if getattr(config, 'is_encoder_decoder', False) else 'it cannot generate'})",
                         "pass an *ForCausalLM / *LMHeadModel; compile encoders with forge_fe.compile")


def static_cache(model, max_cache_len: int):
    """transformers' StaticCache for this model, refused unless every layer is a plain full-attention
    StaticLayer (a sliding window no shorter than the cache behaves as one)."""
    from transformers.cache_utils import StaticCache, StaticLayer, StaticSlidingWindowLayer
    try:
        cache = StaticCache(config=model.config, max_cache_len=max_cache_len)
    except Exception as exc:
        raise ForgeError(STAGE, f"{type(model).__name__} has no static KV cache: {type(exc).__name__}: {exc}",
                         "compile_lm supports models whose layers cache keys/values (transformers StaticCache)") from exc
    layers = []
    for i, layer in enumerate(cache.layers):
        window = getattr(layer, "max_cache_len", 0) if isinstance(layer, StaticSlidingWindowLayer) else None
        if type(layer) is StaticLayer or (window is not None and window >= max_cache_len):
            layers.append(StaticLayer(max_cache_len=max_cache_len))
            continue
        kind = type(layer).__name__
        if window is not None:
            kind += f" (sliding window {window} < max_cache_len {max_cache_len})"
        raise ForgeError(STAGE, f"unsupported cache type in layer {i} of {type(model).__name__}: {kind}",
                         "compile_lm supports full-attention KV caches (StaticLayer); for a sliding window, "
                         "use max_cache_len <= the window")
    cache.layers = layers
    return cache


class LMStep(torch.nn.Module):
    """One prefill (`prefill=True`) or decode step of `model` over explicit cache tensors (module doc)."""

    def __init__(self, model, max_cache_len: int, prefill: bool):
        super().__init__()
        self.model = model
        self.max_cache_len = max_cache_len
        self.prefill = prefill

    def forward(self, input_ids, position_ids, attention_mask, index, *cache_tensors):
        cache = static_cache(self.model, self.max_cache_len)
        # Prefill starts at slot 0, a constant (so its write is a fill from row 0); decode at `index`.
        start = torch.zeros((), dtype=torch.int64) if self.prefill else index.reshape(())
        for i, layer in enumerate(cache.layers):
            keys, values = cache_tensors[2 * i], cache_tensors[2 * i + 1]
            layer.lazy_initialization(keys, values)          # sets device, batch, heads (and zero tensors)
            layer.keys, layer.values = keys.clone(), values.clone()   # written by the layer's own update
            layer.cumulative_length = start.clone()
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         cache=cache, use_cache=True, logits_to_keep=index if self.prefill else 0)
        return (out.logits,) + tuple(t for layer in cache.layers for t in (layer.keys, layer.values))


def cache_shapes(model, batch_size: int, max_cache_len: int) -> list[tuple[tuple[int, ...], torch.dtype]]:
    """Shape and dtype of each cache tensor (k_0, v_0, k_1, ...), read from one real step of the model."""
    cache = static_cache(model, max_cache_len)
    ids = torch.zeros((batch_size, 1), dtype=torch.long)
    with torch.no_grad():
        try:
            model(input_ids=ids, cache=cache, use_cache=True)
        except Exception as exc:
            raise ForgeError(STAGE, f"{type(model).__name__} failed on a one-token step with a StaticCache: "
                             f"{type(exc).__name__}: {exc}",
                             "compile_lm needs a model whose forward takes cache=StaticCache(...)") from exc
    return [(tuple(t.shape), t.dtype) for layer in cache.layers for t in (layer.keys, layer.values)]


def sample_inputs(batch_size: int, length: int, max_cache_len: int, shapes) -> list[torch.Tensor]:
    """Inputs of the step for a prompt chunk of `length` tokens (prefill) or 1 (decode)."""
    ids = torch.zeros((batch_size, length), dtype=torch.long)
    positions = torch.arange(length, dtype=torch.long).expand(batch_size, length).contiguous()
    mask = torch.ones((batch_size, max_cache_len), dtype=torch.long)
    index = torch.tensor([length - 1], dtype=torch.long)
    return [ids, positions, mask, index] + [torch.zeros(s, dtype=d) for s, d in shapes]
