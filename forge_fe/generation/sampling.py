"""Choosing the next token the way transformers' generate() does.

Greedy: argmax of the last step's logits (float32). Sampling: HF's warpers in HF's order,
temperature -> top-k -> top-p (GenerationMixin._get_logits_processor), then softmax and one
`torch.multinomial` draw per sequence, from `generator` when one is given (HF draws from torch's
default generator: the same draws after `torch.manual_seed(s)` as `torch.Generator().manual_seed(s)`).
Each warper matches its HF class (transformers.generation.logits_process): filtered tokens get -inf,
at least one token is kept.
"""
from __future__ import annotations

import torch

from forge_fe.errors import InputError


def temperature(scores: torch.Tensor, t: float) -> torch.Tensor:
    """TemperatureLogitsWarper: scores / t."""
    return scores / t


def top_k(scores: torch.Tensor, k: int) -> torch.Tensor:
    """TopKLogitsWarper: keep the k largest scores (ties with the k-th kept)."""
    k = min(max(k, 1), scores.shape[-1])
    kth = torch.topk(scores, k)[0][..., -1, None]
    return scores.masked_fill(scores < kth, -float("inf"))


def top_p(scores: torch.Tensor, p: float) -> torch.Tensor:
    """TopPLogitsWarper: drop the smallest tokens whose cumulative probability is <= 1 - p; keep the top one."""
    sorted_logits, sorted_indices = torch.sort(scores, descending=False)
    cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - p)
    remove[..., -1:] = False
    return scores.masked_fill(remove.scatter(1, sorted_indices, remove), -float("inf"))


def check_options(t, k, p):
    """The values HF's warpers accept (they raise ValueError otherwise)."""
    if not isinstance(t, (int, float)) or not t > 0:
        raise InputError(f"temperature={t!r}: it must be a strictly positive float",
                         "use do_sample=False for greedy decoding instead of temperature=0")
    if k is not None and (not isinstance(k, int) or isinstance(k, bool) or k < 0):
        raise InputError(f"top_k={k!r}: it must be a non-negative integer (0 disables it)")
    if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise InputError(f"top_p={p!r}: it must be a float in [0, 1] (1.0 disables it)")


def warp(scores: torch.Tensor, t: float, k: int | None, p: float) -> torch.Tensor:
    """The sampling warpers HF applies for these settings, in its order."""
    if t != 1.0:
        scores = temperature(scores, t)
    if k:
        scores = top_k(scores, k)
    if p < 1.0:
        scores = top_p(scores, p)
    return scores


def next_tokens(logits: torch.Tensor, do_sample: bool, t: float, k: int | None, p: float,
                generator: torch.Generator | None) -> torch.Tensor:
    """[batch, vocab] float32 logits of the last position -> [batch] token ids."""
    if not do_sample:
        return torch.argmax(logits, dim=-1)
    probs = torch.softmax(warp(logits, t, k, p), dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(1)
