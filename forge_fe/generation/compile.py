"""`compile_lm`: a transformers causal LM -> one binary with prefill and decode programs.

Each program is an `LMStep` (programs.py) compiled by the ordinary pipeline (`forge_fe.compile`),
so both get every stage's artifacts (with `dump_dir`, in `<dump_dir>/<entry>/`). The binaries
are merged into one with the weights stored once (lm_binary.py).

Prefill buckets: a prompt of L tokens runs the prefill program of the smallest bucket >= L,
right-padded to it; the padding's cache rows are never attended to (causal mask) and are
overwritten by decode, so every slot is usable and L + max_new_tokens <= max_cache_len is the
only limit. By default the buckets are 32, 128, 512, ... below max_cache_len, and max_cache_len.
"""
from __future__ import annotations

import dataclasses
import os

from forge_fe.config import CompileDepth, CompilerConfig
from forge_fe.errors import ForgeError
from forge_fe.generation.programs import STAGE, LMStep, cache_shapes, check_causal_lm, sample_inputs

# GenerationConfig fields generate() follows (with transformers' defaults for unset ones) ...
SAMPLING_DEFAULTS = {"do_sample": False, "temperature": 1.0, "top_k": 50, "top_p": 1.0}
# ... and the ones it does not implement: a model whose generation_config sets them is refused,
# since its HF generate() would choose different tokens.
UNSUPPORTED = {"num_beams": 1, "repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "min_length": 0,
               "min_new_tokens": None, "bad_words_ids": None, "suppress_tokens": None,
               "begin_suppress_tokens": None, "forced_bos_token_id": None, "forced_eos_token_id": None,
               "min_p": None, "typical_p": 1.0, "epsilon_cutoff": 0.0, "eta_cutoff": 0.0,
               "exponential_decay_length_penalty": None, "sequence_bias": None, "guidance_scale": None,
               "top_h": None, "renormalize_logits": False}


def default_buckets(max_cache_len: int) -> list[int]:
    buckets, b = [], 32
    while b < max_cache_len:
        buckets.append(b)
        b *= 4
    return buckets + [max_cache_len]


def generation_settings(model) -> dict:
    """Token ids and sampling defaults from the model's generation_config, as HF's generate() resolves them."""
    gc = model.generation_config
    set_unsupported = {k: getattr(gc, k) for k, default in UNSUPPORTED.items()
                       if getattr(gc, k, None) is not None and getattr(gc, k) != default}
    if set_unsupported:
        raise ForgeError(STAGE, f"{type(model).__name__}'s generation_config sets options compile_lm's generate() "
                         f"does not implement: {set_unsupported}",
                         "reset them (model.generation_config.<name> = None) to generate with temperature/top-k/top-p "
                         "only, or use HF generate for these")
    eos = gc.eos_token_id
    eos = [] if eos is None else [int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])]
    out = {k: getattr(gc, k) if getattr(gc, k, None) is not None else d for k, d in SAMPLING_DEFAULTS.items()}
    out.update(eos_token_id=eos, pad_token_id=gc.pad_token_id, max_new_tokens=gc.max_new_tokens,
               max_length=gc.max_length if gc.max_length is not None else 20)
    return out


def _program_cfg(cfg: CompilerConfig, entry: str) -> CompilerConfig:
    if not cfg.dump_dir:
        return cfg
    return dataclasses.replace(cfg, dump_dir=os.path.join(cfg.dump_dir, entry))


def compile_lm(model, max_cache_len: int = 256, batch_size: int = 1, compiler_cfg: CompilerConfig | None = None,
               prefill_buckets=None, progress=None):
    """Compile a transformers causal LM for generation on the emulated device.

    Returns a `CompiledLM` (generate / stream / save / report). `prefill_buckets`: prompt lengths
    the prefill program is compiled for (default `default_buckets(max_cache_len)`)."""
    from forge_fe.compiled import compile as compile_program
    from forge_fe.generation.lm_binary import merge
    from forge_fe.generation.runtime import CompiledLM, LMReport

    check_causal_lm(model)
    if not isinstance(max_cache_len, int) or max_cache_len < 2:
        raise ForgeError(STAGE, f"max_cache_len={max_cache_len!r}: it must be an integer >= 2",
                         "max_cache_len is the longest prompt + generated tokens one sequence may reach")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ForgeError(STAGE, f"batch_size={batch_size!r}: it must be a positive integer")
    buckets = sorted(set(prefill_buckets or default_buckets(max_cache_len)))
    if any(not isinstance(b, int) or not 1 <= b <= max_cache_len for b in buckets):
        raise ForgeError(STAGE, f"prefill_buckets={prefill_buckets!r}: each must be an integer in [1, max_cache_len="
                         f"{max_cache_len}]", "prompts longer than the largest bucket are refused at generate time")
    cfg = compiler_cfg or CompilerConfig()
    model = model.eval()
    settings = generation_settings(model)
    shapes = cache_shapes(model, batch_size, max_cache_len)
    name = type(model).__name__
    programs = {f"prefill_{p}": (LMStep(model, max_cache_len, prefill=True), p) for p in buckets}
    programs["decode"] = (LMStep(model, max_cache_len, prefill=False), 1)
    compiled = {}
    for entry, (step, length) in programs.items():
        compiled[entry] = compile_program(step, sample_inputs(batch_size, length, max_cache_len, shapes),
                                          module_name=f"{name}_{entry}", compiler_cfg=_program_cfg(cfg, entry),
                                          progress=progress)
    meta = {"model": name, "max_cache_len": max_cache_len, "batch_size": batch_size, "prefill_buckets": buckets,
            "vocab_size": int(model.config.get_text_config().vocab_size),
            "cache": [{"shape": list(s), "dtype": str(d).replace("torch.", "")} for s, d in shapes],
            "generation": settings}
    binary = None
    if cfg.compile_depth == CompileDepth.FULL and all(c.binary is not None for c in compiled.values()):
        binary, meta["entries"] = merge({e: c.binary for e, c in compiled.items()}, name, meta)
    return CompiledLM(binary, meta, LMReport(meta, {e: c.report for e, c in compiled.items()}, binary),
                      programs=compiled)

