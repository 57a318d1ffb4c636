"""Side-by-side ratios for LLM generation (issue 13): forge_fe.compile_lm on the emulated device vs
transformers eager, same model, same prompt, same process and threads.

Every quantity is timed in alternation with its counterpart, round after round (paired_medians).

(a) decode: time per generated token. HF: `model.generate(do_sample=False)` with N and 1 new tokens,
    (t_N - t_1) / (N - 1); ours the same with `lm.generate`. Both include choosing the token.
(b) prefill: our prefill program vs HF's forward on the prompt (`use_cache=True, logits_to_keep=1`,
    what generate runs first).
(c) the decode curve: one decode step at cache positions p (ours: the decode program; HF: a forward
    of one token over a DynamicCache holding p tokens). Ours is flat by construction (static cache);
    HF's grows with p.
(d) the performance model's estimates for the chip: prefill, decode, and the memory-bound decode floor.

    python benchmarks/bench_generation.py [--archs gpt2,llama] [--size 100m] [--prompt 64] [--new 64]

Medians of --rounds runs. The machine is shared and noisy: read the ratios, not the absolute times.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import forge_fe  # noqa: E402
from forge_fe.generation.models import causal_lm  # noqa: E402


def paired_medians(fns: dict, rounds: int) -> dict:
    """Median time of each function, run in turn round after round, so a load change on the shared
    machine hits every side alike."""
    for fn in fns.values():
        fn()
    times = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def hf_step_at(model, ids, position):
    """One HF forward of one token over a DynamicCache already holding `position` tokens."""
    from transformers import DynamicCache
    cache = DynamicCache(config=model.config)
    model(input_ids=ids[:, :1].repeat(1, position), cache=cache, use_cache=True)
    tok = ids[:, :1]

    def step():
        model(input_ids=tok, cache=cache, use_cache=True)
        cache.crop(-1)                # back to `position` tokens for the next round
    return step


def ours_step_at(lm, position):
    """One decode program run at cache slot `position` (inputs prepared as generate does)."""
    b = lm.batch_size
    mask = torch.ones((b, lm.max_cache_len), dtype=torch.long)
    tok = torch.zeros((b, 1), dtype=torch.long)
    pos = torch.full((b, 1), position, dtype=torch.long)
    return lambda: lm._run("decode", tok, pos, mask, torch.tensor([position]))


def bench(arch, size, prompt_len, new, cache_len, rounds):
    model = causal_lm(arch, size)
    model.generation_config.eos_token_id = None
    params = sum(p.numel() for p in model.parameters())
    t0 = time.perf_counter()
    lm = forge_fe.compile_lm(model, max_cache_len=cache_len, prefill_buckets=[prompt_len])
    compile_s = time.perf_counter() - t0
    ids = torch.randint(0, model.config.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(0))
    mask = torch.zeros((1, cache_len), dtype=torch.long)
    mask[:, :prompt_len] = 1
    pos = torch.arange(prompt_len)[None]
    with torch.no_grad():
        assert torch.equal(lm.generate(ids, max_new_tokens=8), model.generate(ids, max_new_tokens=8, do_sample=False))
        t = paired_medians({
            "hf_1": lambda: model.generate(ids, max_new_tokens=1, do_sample=False),
            "ours_1": lambda: lm.generate(ids, max_new_tokens=1),
            "hf_n": lambda: model.generate(ids, max_new_tokens=new, do_sample=False),
            "ours_n": lambda: lm.generate(ids, max_new_tokens=new),
            "hf_prefill": lambda: model(input_ids=ids, use_cache=True, logits_to_keep=1),
            "ours_prefill": lambda: lm._run(f"prefill_{prompt_len}", ids, pos, mask, torch.tensor([prompt_len - 1])),
        }, rounds)
        positions = (prompt_len, cache_len // 2, cache_len - 2)
        steps = paired_medians({**{("ours", p): ours_step_at(lm, p) for p in positions},
                                **{("hf", p): hf_step_at(model, ids, p) for p in positions}}, rounds * 4)
        curve = [(p, steps[("ours", p)], steps[("hf", p)]) for p in positions]
    hf_tok = (t["hf_n"] - t["hf_1"]) / (new - 1)
    our_tok = (t["ours_n"] - t["ours_1"]) / (new - 1)
    hf_prefill, ours_prefill = t["hf_prefill"], t["ours_prefill"]
    rep = lm.report.to_dict()
    return {"arch": arch, "params_m": params / 1e6, "compile_s": compile_s, "hf_tok": hf_tok, "our_tok": our_tok,
            "hf_prefill": hf_prefill, "our_prefill": ours_prefill, "curve": curve,
            "est_prefill": rep["programs"][f"prefill_{prompt_len}"]["estimated_s"],
            "est_decode": rep["programs"]["decode"]["estimated_s"],
            "floor": rep["memory_bound_decode"]["seconds_per_token"]}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", default="gpt2,llama")
    ap.add_argument("--size", default="100m", choices=["tiny", "100m"])
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--new", type=int, default=64)
    ap.add_argument("--cache", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads for both sides")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()} (both sides); prompt {args.prompt}, {args.new} new tokens, "
          f"max_cache_len {args.cache}, fp32, batch 1")
    rows = [bench(a, args.size, args.prompt, args.new, args.cache, args.rounds) for a in args.archs.split(",")]
    print(f"\n{'arch':<7} {'params':>7} {'compile':>8} | {'decode/token':>12} {'HF eager':>9} {'ratio':>6} | "
          f"{'prefill':>8} {'HF fwd':>8} {'ratio':>6}")
    for r in rows:
        print(f"{r['arch']:<7} {r['params_m']:>6.0f}M {r['compile_s']:>7.1f}s | {r['our_tok'] * 1e3:>10.2f}ms "
              f"{r['hf_tok'] * 1e3:>7.2f}ms {r['our_tok'] / r['hf_tok']:>6.2f} | {r['our_prefill'] * 1e3:>6.1f}ms "
              f"{r['hf_prefill'] * 1e3:>6.1f}ms {r['our_prefill'] / r['hf_prefill']:>6.2f}")
    print("\ndecode step vs cache position (ms): ours (static cache) / HF (DynamicCache)")
    for r in rows:
        print(f"{r['arch']:<7} " + "   ".join(f"p={p}: {o * 1e3:.2f} / {h * 1e3:.2f}" for p, o, h in r["curve"]))
    print("\nperformance model on the chip (wormhole_b0): est. prefill, est. decode per token, memory-bound floor")
    for r in rows:
        print(f"{r['arch']:<7} prefill {r['est_prefill'] * 1e3:.3f} ms   decode {r['est_decode'] * 1e3:.3f} ms/token "
              f"({1 / r['est_decode']:.0f} tokens/s)   floor {r['floor'] * 1e3:.3f} ms/token")


if __name__ == "__main__":
    main()
