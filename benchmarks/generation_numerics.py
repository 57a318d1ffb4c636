"""Generation numerics by data format, per architecture: what bf16 / Bfp8_b weights do to the tokens.

    python benchmarks/generation_numerics.py [--archs gpt2,llama,...] [--size tiny] [--prompts 4] [--new 32]
                                            [--out docs/generation_numerics.md]

For each architecture (random-weight transformers config) the fp32 compile is the reference (its
greedy tokens equal HF's, tests/test_generation.py). For each low-precision configuration:

* first-step PCC: the prefill's next-token logits against the fp32 run's;
* token agreement: teacher-forced, fed the fp32 run's tokens, the share of steps whose argmax equals
  the fp32 token (one early difference does not count against every later step);
* identical run: free-running greedy generation, the mean number of leading tokens equal to fp32's.

Random weights give flat next-token distributions (near-ties between the top tokens), so these
rates are pessimistic compared to a trained checkpoint, whose top token usually leads by a margin.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import forge_fe  # noqa: E402
from forge_fe import CompilerConfig, DataFormat as DF  # noqa: E402
from forge_fe.generation.models import ARCHS, causal_lm  # noqa: E402
from forge_fe.verify import pcc  # noqa: E402

CONFIGS = [
    ("Float16_b", dict(default_df_override=DF.Float16_b)),
    ("Float16_b, weights Bfp8_b", dict(default_df_override=DF.Float16_b, df_overrides={"weights": DF.Bfp8_b})),
]


def measure(arch, size, prompts, new, cache_len):
    model = causal_lm(arch, size)
    model.generation_config.eos_token_id = None
    vocab = model.config.vocab_size
    ids = [torch.randint(0, vocab, (1, 6 + 3 * i), generator=torch.Generator().manual_seed(i)) for i in range(prompts)]
    bucket = max(x.shape[1] for x in ids)
    compile_lm = lambda **cfg: forge_fe.compile_lm(model, max_cache_len=cache_len, prefill_buckets=[bucket],  # noqa: E731
                                                   compiler_cfg=CompilerConfig(**cfg))
    ref = compile_lm()
    ref_out = [ref.generate(x, max_new_tokens=new) for x in ids]
    ref_logits = [ref.logits(x)[:, 0] for x in ids]
    rows = []
    for name, cfg in CONFIGS:
        lm = compile_lm(**cfg)
        first = min(pcc(lm.logits(x)[:, 0].numpy(), r.numpy()) for x, r in zip(ids, ref_logits))
        agree, prefix = [], []
        for x, want in zip(ids, ref_out):
            forced = lm.logits(x, want[:, x.shape[1]:-1])                     # [1, new, vocab]
            agree.append(float((forced.argmax(-1) == want[:, x.shape[1]:]).float().mean()))
            free = lm.generate(x, max_new_tokens=new)[0, x.shape[1]:]
            diff = (free != want[0, x.shape[1]:]).nonzero()
            prefix.append(int(diff[0]) if len(diff) else new)
        rows.append((arch, name, first, float(np.mean(agree)), float(np.mean(prefix))))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", default=",".join(sorted(ARCHS)))
    ap.add_argument("--size", default="tiny", choices=["tiny", "100m"])
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--new", type=int, default=32)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    cache_len = 6 + 3 * (args.prompts - 1) + args.new
    lines = [f"| arch | data formats | first-step logits PCC (worst of {args.prompts} prompts) | token agreement "
             f"(teacher-forced, {args.new} steps) | identical greedy tokens (mean of {args.new}) |",
             "|---|---|---|---|---|"]
    for arch in args.archs.split(","):
        for a, name, first, agree, prefix in measure(arch, args.size, args.prompts, args.new, cache_len):
            lines.append(f"| {a} | {name} | {first:.5f} | {100 * agree:.1f}% | {prefix:.1f} |")
            print(lines[-1], flush=True)
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(f"Generation numerics ({args.size} configs, random weights; "
                    "`python benchmarks/generation_numerics.py`), reference: the fp32 compile\n\n" + table)


if __name__ == "__main__":
    main()
