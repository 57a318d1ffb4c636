"""The device performance model against published tt-metal/TTNN figures, model by model.

    python benchmarks/perf_calibration.py                  # every model (compiles them: minutes)
    python benchmarks/perf_calibration.py --models resnet50,vit_base
    python benchmarks/perf_calibration.py --md             # the table as docs/numerics.md carries it

Each model is compiled as TTNN's demo runs it (batch, sequence, bfloat16 activations, bfloat8_b
weights, the demo's math fidelity) and its device programs are estimated with
forge_fe.device.perf_model.estimate_program on wormhole_b0 (n150) and blackhole (p150). The published
figure is converted to milliseconds per batch (batch / throughput, or 1000 / tokens per second
per user) and the table prints estimate / published. The published figures are end-to-end
(host-observed, with trace and two command queues): they include dispatch overheads the model
does not price per op, which is one reason the model can be optimistic.

Compiled device programs are cached (ops and tensor descriptors only, no weights) under
--cache, so re-estimating after a change to the performance model takes seconds.
"""
from __future__ import annotations

import argparse
import os
import pickle
import sys

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Published figures. Source: tenstorrent/tt-metal models/README.md ("CNNs and Vision
# Transformers", "NLPs", "LLMs" tables; last update Nov 3, 2025; read at commit
# 020681562ac12f6680bafbc83fafea98e7a3b4d4), plus the per-model files named in `detail`.
README = "tenstorrent/tt-metal models/README.md"
#: name -> (builder, fidelity, [(arch, batch, published value, unit, detail)]). Formats as the demos
#: run: CNNs bfloat8_b activations and weights at LoFi, transformers bfloat16 activations with
#: bfloat8_b weights at HiFi2 (FORMATS).
CASES = {
    "resnet50": ("resnet50", "LoFi", [
        ("wormhole_b0", 16, 4700, "img/s", "n150, 224x224"),
        ("blackhole", 16, 12600, "img/s", "p150, 224x224")]),
    "mobilenet_v2": ("mobilenet_v2", "LoFi", [
        ("wormhole_b0", 10, 3030, "img/s", "n150, 224x224")]),
    "vit_base": ("vit_base", "HiFi2", [
        ("wormhole_b0", 8, 1370, "img/s", "n150, 224x224"),
        ("blackhole", 10, 3700, "img/s", "p150, 224x224")]),
    "bert_base": ("bert_base", "HiFi2", [   # Sentence-BERT, bert-base backbone, seq 384
        ("wormhole_b0", 8, 433, "sent/s", "n150; seq 384: models/demos/wormhole/sentence_bert/README.md"),
        ("blackhole", 8, 929, "sent/s", "p150; seq 384")]),
    "bert_large": ("bert_large", "HiFi2", [
        ("wormhole_b0", 8, 270, "sent/s",
         "n150; seq 384, BFLOAT8_B-SHARDED: models/demos/metal_BERT_large_11/tests/test_perf_bert11.py")]),
    # The README's Llama rows are the tt_transformers demo at batch 32 (models/tt_transformers/demo/
    # simple_text_demo.py): ttft = the prefill of all 32 users / 32, and the demo prefills one user at a
    # time (Generator.prefill_forward_text), so one ttft is one batch-1, 128-token prefill: the decoder,
    # the KV-cache fill and the LM head on the tile of the last token (get_last_token). Our program for it
    # is the generation prefill step (forge_fe.generation.programs.LMStep(prefill=True)): the same work.
    # (The README's t/s/u, one traced decode step of the 32-user batch, is not compared: see docs/numerics.md.)
    "llama_3_2_1b": ("llama_3_2_1b_prefill", "HiFi2", [
        ("wormhole_b0", 1, 23, "ms ttft",
         "n150; one user's 128-token prefill with KV-cache fill and last-token LM head "
         "(models/tt_transformers/demo/simple_text_demo.py)")]),
}
#: KV-cache length of the Llama programs: the README's 128 rows plus one tile
LLAMA_CACHE_LEN = 160


#: activation formats; others Float16_b. BERT-large: its BFLOAT8_B-SHARDED config
#: (models/demos/metal_BERT_large_11/tt/model_config.py: bfloat8_b default dtype, block-sharded L1)
FORMATS = {"resnet50": "Bfp8_b", "mobilenet_v2": "Bfp8_b", "bert_large": "Bfp8_b"}


def build(name: str, batch: int):
    from forge_fe import zoo
    if name == "resnet50":
        return zoo.resnet50(batch=batch)
    if name == "mobilenet_v2":
        return zoo.mobilenet_v2(batch=batch)
    if name == "vit_base":
        model, _ = zoo.vit()
        return model, [torch.randn(batch, 3, 224, 224)]
    if name == "bert_base":
        return zoo.bert_base(batch=batch, seq=384)
    if name == "bert_large":
        return zoo._bert(dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                              intermediate_size=4096), batch, 384, 0)
    if name in ("llama_3_2_1b_prefill", "llama_3_2_1b_decode"):
        import transformers
        from forge_fe.generation.programs import LMStep, cache_shapes, sample_inputs
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from bench_compile_scale import LLAMA_32_1B
        torch.manual_seed(0)
        model = transformers.LlamaForCausalLM(transformers.LlamaConfig(**LLAMA_32_1B)).eval()
        prefill = name.endswith("prefill")
        shapes = cache_shapes(model, batch, LLAMA_CACHE_LEN)
        return LMStep(model, LLAMA_CACHE_LEN, prefill), sample_inputs(batch, 128 if prefill else 1, LLAMA_CACHE_LEN,
                                                                       shapes)
    raise KeyError(name)


def programs(name: str, batch: int, cache: str) -> list:
    """The model's run-time device programs (constants dropped), compiled once and cached."""
    path = os.path.join(cache, f"{name}_b{batch}.pkl")
    if os.path.exists(path):
        with open(path, "rb") as f:
            return pickle.load(f)
    import forge_fe
    from forge_fe import DataFormat as DF
    model, inputs = build(name, batch)
    cfg = forge_fe.CompilerConfig(default_df_override=DF[FORMATS.get(name, "Float16_b")],
                                  df_overrides={"weights": DF.Bfp8_b},
                                  compile_depth=forge_fe.CompileDepth.BINARY)
    cm = forge_fe.compile(model, inputs, compiler_cfg=cfg)
    progs = [p for p in cm.context.binary.programs if not p.private]
    for p in progs:
        p.constants = {}
    os.makedirs(cache, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(progs, f)
    return progs


def published_ms(batch: int, value: float, unit: str) -> float:
    return value if unit.startswith("ms") else 1000.0 * batch / value


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(CASES))
    ap.add_argument("--cache", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "forge_fe_perf_calibration"))
    ap.add_argument("--md", action="store_true", help="print a Markdown table")
    args = ap.parse_args()
    from forge_fe.device import perf_model
    from forge_fe.compiler.binary_builder import ARCHS
    from forge_fe.config import MathFidelity
    rows = []
    for name in args.models.split(","):
        builder, fidelity, cases = CASES[name]
        for arch, batch, value, unit, detail in cases:
            progs = programs(builder, batch, args.cache)
            est = []
            for p in progs:
                est += perf_model.estimate_program(p, ARCHS[arch], MathFidelity[fidelity])
            s = perf_model.summarize(est, ARCHS[arch])
            pub = published_ms(batch, value, unit)
            rows.append((name, arch, batch, fidelity, f"{value:,} {unit}", pub, s["estimated_latency_s"] * 1e3,
                         s["total_dram_bytes"] / 1e6, detail))
            print(f"done {name} {arch}", file=sys.stderr, flush=True)
    if args.md:
        print("| model | arch | batch | fidelity | published | published ms/batch | estimate ms | estimate / published "
              "| DRAM MB | source detail |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for name, arch, batch, fid, pub_s, pub, est, dram, detail in rows:
            print(f"| {name} | {arch} | {batch} | {fid} | {pub_s} | {pub:.2f} | {est:.2f} | {est / pub:.2f} | "
                  f"{dram:.0f} | {detail} |")
    else:
        print(f"\n{'model':14s} {'arch':12s} {'batch':>5s} {'published':>16s} {'pub ms':>8s} {'est ms':>8s} "
              f"{'est/pub':>8s} {'DRAM MB':>8s}")
        for name, arch, batch, fid, pub_s, pub, est, dram, detail in rows:
            print(f"{name:14s} {arch:12s} {batch:5d} {pub_s:>16s} {pub:8.2f} {est:8.2f} {est / pub:8.2f} {dram:8.0f}")
    ratios = [r[6] / r[5] for r in rows]
    print(f"\nratios within 2x: {sum(0.5 <= r <= 2.0 for r in ratios)} of {len(ratios)}; "
          f"published figures: {README} (and the files named per row)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
