"""Autoregressive generation for decoder LMs: prefill and decode programs over a static KV cache.

    lm = forge_fe.compile_lm(model, max_cache_len=256, batch_size=1)
    ids = lm.generate(input_ids, max_new_tokens=32)

See docs/generation.md. programs.py: the exported step functions; compile.py: compile_lm;
lm_binary.py: one binary for both programs; runtime.py: CompiledLM; sampling.py: HF's token rules.
"""
from forge_fe.generation.compile import compile_lm  # noqa: F401
from forge_fe.generation.runtime import CompiledLM, LMReport  # noqa: F401
