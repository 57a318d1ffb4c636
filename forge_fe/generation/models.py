"""Decoder LMs from transformers configs with random weights (nothing downloaded), for tests,
benchmarks and the model matrix.

`causal_lm(arch, size)`: size "tiny" (2 layers, hidden 64, vocab 512: compiles in seconds) or
"100m" (a released ~100M-parameter configuration: GPT-2 small, SmolLM-135M, ...).
"""
from __future__ import annotations

import torch

_TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=512, max_position_embeddings=256)

# arch -> (config class, model class, tiny overrides, ~100M overrides)
ARCHS = {
    "gpt2": ("GPT2Config", "GPT2LMHeadModel",
             dict(n_layer=2, n_embd=64, n_head=4, vocab_size=512, n_positions=256, bos_token_id=1, eos_token_id=2),
             dict()),                                                     # GPT-2 small, 124M
    "llama": ("LlamaConfig", "LlamaForCausalLM", dict(_TINY),             # RoPE, GQA, RMSNorm, SwiGLU
              dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                   num_key_value_heads=3, vocab_size=49152, max_position_embeddings=2048,
                   tie_word_embeddings=True)),                            # SmolLM-135M
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(_TINY),             # q/k/v biases
              dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=12, num_attention_heads=8,
                   num_key_value_heads=2, vocab_size=32000, tie_word_embeddings=True)),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(_TINY),       # sliding-window layers (window >= cache)
                dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=12, num_attention_heads=8,
                     num_key_value_heads=2, vocab_size=32000)),
    "phi3": ("Phi3Config", "Phi3ForCausalLM",                             # fused qkv / gate_up projections
             dict(_TINY, pad_token_id=0, bos_token_id=1, eos_token_id=2),
             dict(hidden_size=512, intermediate_size=1536, num_hidden_layers=12, num_attention_heads=8,
                  num_key_value_heads=8, vocab_size=32064)),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", dict(_TINY, num_key_value_heads=1, head_dim=16),
              dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=8, num_attention_heads=8,
                   num_key_value_heads=1, head_dim=64, vocab_size=32000)),
    "opt": ("OPTConfig", "OPTForCausalLM",                                # learned positions (offset 2), ReLU
            dict(hidden_size=64, ffn_dim=128, num_hidden_layers=2, num_attention_heads=4, vocab_size=512,
                 max_position_embeddings=256, word_embed_proj_dim=64),
            dict()),                                                      # OPT-125m
}


def causal_lm(arch: str, size: str = "tiny", seed: int = 0, **overrides):
    """A random-weight transformers causal LM (eval mode). Norm weights and biases are perturbed
    too (fresh models have unit norms and zero biases), so every weight matters."""
    import transformers
    config_cls, model_cls, tiny, full = ARCHS[arch]
    kwargs = dict(tiny if size == "tiny" else full, **overrides)
    torch.manual_seed(seed)
    model = getattr(transformers, model_cls)(getattr(transformers, config_cls)(**kwargs))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return model.eval()
