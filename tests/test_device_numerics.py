"""Issue 5 end to end: data formats in TTIR and the binary, numerics in the emulator, the perf report."""
import re

import pytest

import forge_fe
from forge_fe import CompilerConfig, DataFormat as DF, MathFidelity as MF, zoo


def compile_and_pcc(name, **cfg):
    model, inputs = zoo.MODELS[name]()
    cm = forge_fe.compile(model, inputs, compiler_cfg=CompilerConfig(**cfg))
    checks = forge_fe.verify(inputs, model, cm, pcc_min=-1.0, rtol=1e9, atol=1e9)   # measure only
    return cm, min(c.pcc for c in checks)


@pytest.fixture(scope="module")
def bf16_bert():
    return compile_and_pcc("bert_tiny", default_df_override=DF.Float16_b,
                           df_overrides={"softmax": DF.Float32, "weights": DF.Bfp8_b})


def test_formats_reach_ttir_and_binary(bf16_bert):
    cm, _ = bf16_bert
    ttir = cm.ttir
    # activations in bf16; softmax kept in fp32 by op type
    assert re.search(r'"ttir.matmul".*-> tensor<[0-9x]+xbf16>', ttir)
    assert re.search(r'"ttir.softmax".*-> tensor<[0-9x]+xf32>', ttir)
    formats = {t.data_format for p in cm.binary.programs for t in p.tensors}
    assert {"Float16_b", "Bfp8_b", "Float32"} <= formats
    # weights (parameters) carry Bfp8_b in the tensor descriptors
    params = [p.tensors[i] for p in cm.binary.programs for i in p.constants if p.tensors[i].dtype != "int32"]
    assert params and all(t.data_format == "Bfp8_b" for t in params if t.shape and len(t.shape) == 2)


def test_override_by_node_name():
    model, inputs = zoo.bert_tiny()
    base = forge_fe.compile(model, inputs, compiler_cfg=CompilerConfig(default_df_override=DF.Float16_b))
    name = next(o.loc for p in base.binary.programs for o in p.ops if o.name == "ttir.layer_norm")
    cm = forge_fe.compile(model, inputs, compiler_cfg=CompilerConfig(default_df_override=DF.Float16_b,
                                                                     df_overrides={name: DF.Float32}))
    ln = [re.search(r"-> tensor<[0-9x]+x(\w+)>", line).group(1)
          for line in cm.ttir.splitlines() if '"ttir.layer_norm"' in line]
    assert ln.count("f32") == 1 and ln.count("bf16") == len(ln) - 1


@pytest.mark.parametrize("name", ["resnet_tiny", "bert_tiny"])
def test_bf16_hifi4_is_accurate(name):
    _, pcc = compile_and_pcc(name, default_df_override=DF.Float16_b, math_fidelity=MF.HiFi4)
    assert pcc >= 0.99


@pytest.mark.parametrize("name", ["resnet_tiny", "bert_tiny"])
def test_lower_precision_lowers_accuracy_in_the_hardware_direction(name):
    fp32 = compile_and_pcc(name)[1]
    hifi4 = compile_and_pcc(name, default_df_override=DF.Float16_b, math_fidelity=MF.HiFi4)[1]
    lofi = compile_and_pcc(name, default_df_override=DF.Float16_b, math_fidelity=MF.LoFi)[1]
    bfp8 = compile_and_pcc(name, default_df_override=DF.Float16_b, df_overrides={"weights": DF.Bfp8_b})[1]
    bfp4 = compile_and_pcc(name, default_df_override=DF.Float16_b, df_overrides={"weights": DF.Bfp4_b})[1]
    assert fp32 > hifi4 > lofi
    assert hifi4 >= bfp8 > bfp4


def test_fp32_accumulation_off_changes_results():
    model, inputs = zoo.bert_tiny()
    on = forge_fe.compile(model, inputs, compiler_cfg=CompilerConfig(default_df_override=DF.Float16_b,
                                                                     math_fidelity=MF.HiFi2))
    off = forge_fe.compile(model, inputs, compiler_cfg=CompilerConfig(default_df_override=DF.Float16_b,
                                                                      math_fidelity=MF.HiFi2, fp32_dest_acc_en=False))
    assert off.binary.compute_config == {"math_fidelity": "HiFi2", "fp32_dest_acc_en": False}
    a, b = on(*inputs)[0], off(*inputs)[0]
    assert (a - b).abs().max() > 0


def test_report_has_placement_and_perf(bf16_bert):
    cm, _ = bf16_bert
    d = cm.report.to_dict()
    assert d["placement"] and {"name", "op", "where", "reason"} <= set(d["placement"][0])
    perf = d["perf"]
    assert perf["arch"] == "wormhole_b0"
    assert 0 < perf["roofline_latency_s"] <= perf["estimated_latency_s"]
    assert perf["ops"] and {"op", "time_s", "bound"} <= set(perf["ops"][0])
    assert "estimated device latency (wormhole_b0)" in cm.report.summary()


def test_blackhole_is_estimated_faster_than_wormhole():
    model, inputs = zoo.resnet_tiny()
    est = {arch: forge_fe.compile(model, inputs, compiler_cfg=CompilerConfig(arch=arch, default_df_override=DF.Float16_b))
           .report.perf["estimated_latency_s"] for arch in ("wormhole_b0", "blackhole")}
    assert est["blackhole"] < est["wormhole_b0"]


def test_lower_fidelity_is_estimated_faster():
    model, inputs = zoo.resnet50(image=64)
    est = {f: forge_fe.compile(model, inputs, compiler_cfg=CompilerConfig(math_fidelity=f, default_df_override=DF.Float16_b))
           .report.perf["estimated_latency_s"] for f in (MF.HiFi4, MF.LoFi)}
    assert est[MF.LoFi] < est[MF.HiFi4]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "bert_base"])
def test_full_models_bf16_hifi4(name):
    _, pcc = compile_and_pcc(name, default_df_override=DF.Float16_b, math_fidelity=MF.HiFi4)
    assert pcc >= 0.99
