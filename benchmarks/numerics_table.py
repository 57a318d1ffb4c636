"""PCC against the fp32 framework output, by data format x math fidelity, for ResNet-50 and BERT-base.

    python benchmarks/numerics_table.py [--models resnet50,bert_base] [--out docs/numerics_table.md]

Each cell compiles the model with that configuration, runs the emulated device on the
same inputs and reports the worst output's PCC against torch in fp32. Also prints the
performance model's estimated device latency (wormhole_b0) for each configuration.
"""
from __future__ import annotations

import argparse
import sys

import torch

import forge_fe
from forge_fe import CompilerConfig, DataFormat as DF, MathFidelity as MF, zoo

CONFIGS = [
    ("Float32", dict(default_df_override=None)),
    ("Float16_b", dict(default_df_override=DF.Float16_b)),
    ("Float16_b, weights Bfp8_b", dict(default_df_override=DF.Float16_b, df_overrides={"weights": DF.Bfp8_b})),
    ("Bfp8_b", dict(default_df_override=DF.Bfp8_b)),
    ("Float16_b, weights Bfp4_b", dict(default_df_override=DF.Float16_b, df_overrides={"weights": DF.Bfp4_b})),
]
FIDELITIES = [MF.HiFi4, MF.HiFi2, MF.LoFi]


def worst_pcc(model, inputs, cm):
    checks = forge_fe.verify(inputs, model, cm, pcc_min=-1.0, rtol=1e9, atol=1e9)   # measure, don't judge
    return min(c.pcc for c in checks)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet50,bert_base")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    lines = []
    for name in args.models.split(","):
        model, inputs = zoo.MODELS[name]()
        lines += [f"### {name}", "", "| data formats | " + " | ".join(f.name for f in FIDELITIES) + " |",
                  "|---|" + "---|" * len(FIDELITIES)]
        for label, kw in CONFIGS:
            cells = []
            for fid in FIDELITIES:
                if label == "Float32" and fid is not MF.HiFi4:
                    cells.append("(fp32: n/a)")
                    continue
                cm = forge_fe.compile(model, inputs, compiler_cfg=CompilerConfig(math_fidelity=fid, **kw))
                perf = cm.report.perf or {}
                est = perf.get("estimated_latency_s")
                cells.append(f"{worst_pcc(model, inputs, cm):.5f}" + (f" ({est * 1e3:.2f} ms)" if est else ""))
                print(f"{name:10s} {label:28s} {fid.name:6s} {cells[-1]}", file=sys.stderr, flush=True)
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
