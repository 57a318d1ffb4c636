"""Scaling of a transformer over meshes: 1 -> 2 -> 8 -> 32 chips (docs/mesh.md).

A Llama-3-8B-shaped model (transformers LlamaConfig, on torch's meta device: nothing is
materialized) is planned by forge_fe.mesh.plan in bf16 for an n150, an n300, a T3K (1x8) and a
Galaxy (4x8: tensor parallel over 8, data parallel over 4), from one import. For each mesh it
prints the per-chip weights and peak DRAM, whether that fits, the performance model's compute
time per chip, the ethernet link time of the collectives, and the speedup over one chip.

    python benchmarks/bench_mesh.py [--layers 32] [--batch 4] [--seq 128] [--meshes n150,n300,t3k,galaxy]

These are the model's estimates (forge_fe/device/mesh_perf.py over forge_fe/device/perf_model.py), not silicon
measurements; the numbers all come from one run, so their ratios are comparable.
"""
from __future__ import annotations

import argparse
import time

import torch

import forge_fe


def llama3_8b(layers: int):
    from transformers import LlamaConfig, LlamaForCausalLM
    from forge_fe.zoo import HiddenStates
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=layers, num_attention_heads=32,
                      num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192, rope_theta=500000.0,
                      attn_implementation="eager", use_cache=False, tie_word_embeddings=False)
    with torch.device("meta"):
        return HiddenStates(LlamaForCausalLM(cfg), fields=("logits",)).eval()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--meshes", default="n150,n300,t3k,galaxy")
    args = ap.parse_args(argv)
    model = llama3_8b(args.layers)
    params = sum(p.numel() for p in model.parameters())
    ids = torch.zeros((args.batch, args.seq), dtype=torch.long)
    t0 = time.perf_counter()
    plans = forge_fe.mesh.plan(model, [ids], mesh=args.meshes.split(","), default_df_override="Float16_b")
    took = time.perf_counter() - t0
    print(f"Llama-3-8B shape ({params / 1e9:.2f} B parameters, {args.layers} layers), bf16, prefill of "
          f"batch {args.batch} x {args.seq} tokens; planned shape-only in {took:.0f} s")
    head = (f"{'mesh':<16}{'chips':>6}{'weights/chip':>14}{'peak/chip':>11}{'fits':>6}{'compute ms':>12}"
            f"{'link ms':>9}{'total ms':>10}{'link %':>8}{'speedup':>9}  collectives")
    print(head)
    print("-" * len(head))
    base = plans[0]["total_time_ms"]
    for p in plans:
        chips = p["shape"][0] * p["shape"][1]
        total = p["total_time_ms"]
        coll = ", ".join(f"{k} {v}" for k, v in p["collectives"].items()) or "-"
        print(f"{p['system'] + ' ' + 'x'.join(map(str, p['shape'])):<16}{chips:>6}"
              f"{p['per_device_weight_bytes'] / 2**30:>11.2f} GiB{p['per_device_peak_bytes'] / 2**30:>7.2f} GiB"
              f"{'yes' if p['fits'] else 'NO':>6}{p['compute_time_ms']:>12.2f}{p['link_time_ms']:>9.2f}{total:>10.2f}"
              f"{100 * p['link_time_ms'] / total:>7.1f}%{base / total:>8.2f}x  {coll}")
    print("speedup = one chip's total / this mesh's total (the one-chip estimate assumes the weights fit)")


if __name__ == "__main__":
    main()
