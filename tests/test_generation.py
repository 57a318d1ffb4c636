"""LLM generation (forge_fe.compile_lm): prefill + decode programs over a static KV cache give the
tokens transformers' generate() gives, for every supported architecture (random-weight configs)."""
import json
import os
import subprocess
import sys

import pytest
import torch

import forge_fe
from forge_fe.errors import ForgeError, InputError
from forge_fe.generation.models import ARCHS, causal_lm

S = 64                    # max_cache_len of every LM here
NEW = 32                  # new tokens per parity check

_compiled = {}


def lm_of(arch, batch=1, buckets=(16,), **kw):
    """(HF model, CompiledLM), compiled once per configuration for the whole module."""
    key = (arch, batch, buckets, repr(sorted(kw.items())))
    if key not in _compiled:
        model = causal_lm(arch)
        model.generation_config.eos_token_id = None      # parity over all NEW tokens; eos is tested apart
        _compiled[key] = model, forge_fe.compile_lm(model, max_cache_len=S, batch_size=batch,
                                                    prefill_buckets=list(buckets), **kw)
    return _compiled[key]


def prompt(length, batch=1, seed=1):
    return torch.randint(0, 512, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_greedy_tokens_equal_transformers(arch):
    model, lm = lm_of(arch)
    ids = prompt(7)
    out = lm.generate(ids, max_new_tokens=NEW)
    want = model.generate(ids, max_new_tokens=NEW, do_sample=False)
    assert out.dtype == torch.long and out.shape == (1, 7 + NEW)
    assert torch.equal(out, want), f"first difference at token {int((out != want).nonzero()[0, 1])}"


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_sampling_with_a_generator_draws_hf_tokens(arch):
    """HF samples from torch's default generator; the same seed in a Generator gives the same draws."""
    model, lm = lm_of(arch)
    ids = prompt(5, seed=2)
    opts = dict(do_sample=True, temperature=0.8, top_k=50, top_p=0.9)
    torch.manual_seed(7)
    want = model.generate(ids, max_new_tokens=NEW, **opts)
    out = lm.generate(ids, max_new_tokens=NEW, generator=torch.Generator().manual_seed(7), **opts)
    assert torch.equal(out, want)
    other = lm.generate(ids, max_new_tokens=NEW, generator=torch.Generator().manual_seed(8), **opts)
    assert not torch.equal(other, out), "a different seed must give different samples"


def test_stream_yields_the_generate_tokens_as_they_are_chosen(monkeypatch):
    """stream() gives one [batch] token per step, each before the next decode step runs, and the same
    tokens as generate() (greedy and sampled with the same generator)."""
    from forge_fe.generation.runtime import CompiledLM
    _, lm = lm_of("llama")
    ids = prompt(6, seed=6)
    decodes = []
    real = CompiledLM._decode
    monkeypatch.setattr(CompiledLM, "_decode", lambda self, tok, state: decodes.append(1) or real(self, tok, state))
    steps = []
    for i, tok in enumerate(lm.stream(ids, max_new_tokens=5)):
        assert tok.shape == (1,) and tok.dtype == torch.long
        assert len(decodes) == i, "a token is yielded before the next decode step runs"
        steps.append(tok)
    assert len(decodes) == 4 and torch.equal(torch.stack(steps, 1), lm.generate(ids, max_new_tokens=5)[:, 6:])
    opts = dict(do_sample=True, temperature=0.9, top_k=20)
    sampled = [t for t in lm.stream(ids, max_new_tokens=5, generator=torch.Generator().manual_seed(3), **opts)]
    assert torch.equal(torch.stack(sampled, 1),
                       lm.generate(ids, max_new_tokens=5, generator=torch.Generator().manual_seed(3), **opts)[:, 6:])


@pytest.mark.parametrize("t, k, p", [(1.0, 50, 1.0), (0.7, 5, 1.0), (1.3, 0, 0.8), (0.5, 3, 0.3), (1.0, 1, 0.5)])
def test_warpers_equal_hf_logits_processors(t, k, p):
    """temperature -> top-k -> top-p, as HF's generate chains them, on the same logits (with ties)."""
    from transformers.generation.logits_process import (TemperatureLogitsWarper, TopKLogitsWarper,
                                                        TopPLogitsWarper)
    from forge_fe.generation.sampling import warp
    logits = torch.randn(3, 40, generator=torch.Generator().manual_seed(0))
    logits[:, 5] = logits[:, 6]                       # a tie at the top-k boundary must be treated as HF does
    want = logits.clone()
    for proc in ([TemperatureLogitsWarper(t)] if t != 1.0 else []) + ([TopKLogitsWarper(k)] if k else []) + \
            ([TopPLogitsWarper(p)] if p < 1.0 else []):
        want = proc(None, want)
    assert torch.equal(warp(logits, t, k, p), want)


def test_eos_stops_each_sequence_and_pads_like_hf():
    model, lm = lm_of("llama", batch=2, buckets=(16, S))
    ids = prompt(6, batch=2, seed=3)
    free = lm.generate(ids, max_new_tokens=12)
    eos = int(free[0, 6 + 3])                          # sequence 0 meets it at step 4 (or earlier)
    out = lm.generate(ids, max_new_tokens=12, eos_token_id=eos, pad_token_id=0)
    want = model.generate(ids, max_new_tokens=12, do_sample=False, eos_token_id=eos, pad_token_id=0)
    assert torch.equal(out, want)
    first = int((out[0, 6:] == eos).nonzero()[0])
    assert (out[0, 6 + first + 1:] == 0).all(), "a finished sequence is padded"
    single_model, single = lm_of("llama")
    stop = single.generate(ids[:1], max_new_tokens=12, eos_token_id=eos)
    assert stop.shape[1] == 6 + first + 1 and int(stop[0, -1]) == eos, "batch 1 stops at eos"


def test_batch_with_left_padding_equals_hf():
    model, lm = lm_of("llama", batch=2, buckets=(16, S))
    ids = prompt(9, batch=2, seed=4)
    mask = torch.ones_like(ids)
    ids[1, :4], mask[1, :4] = 0, 0                   # the second prompt has 5 tokens, left-padded
    out = lm.generate(ids, attention_mask=mask, max_new_tokens=NEW)
    want = model.generate(ids, attention_mask=mask, max_new_tokens=NEW, do_sample=False)
    assert torch.equal(out, want)
    alone = lm_of("llama")[1].generate(ids[1:, 4:], max_new_tokens=NEW)
    assert torch.equal(out[1, 9:], alone[0, 5:]), "padding does not change a sequence's tokens"


def test_prompts_of_any_length_reuse_the_compiled_buckets():
    """Lengths 1..S-1 run the two compiled prefill programs (16 and 64), right-padded; nothing recompiles."""
    model, lm = lm_of("llama", batch=2, buckets=(16, S))
    programs = len(lm.binary.programs)
    for n in (1, 16, 17, S - 4):
        ids = prompt(n, batch=2, seed=n)
        out = lm.generate(ids, max_new_tokens=4)
        assert torch.equal(out, model.generate(ids, max_new_tokens=4, do_sample=False)), n
    assert len(lm.binary.programs) == programs
    assert lm.report.to_dict()["prefill_buckets"] == [16, S]
    assert "prefill buckets [16, 64]" in lm.report.summary()


def test_decode_program_is_position_independent(monkeypatch):
    """Every decode step runs the same program with the same shapes: the cache [B, kv_heads, S, head_dim]
    is fixed, a step writes one row (update_cache) and attends over the static cache."""
    from forge_fe.device.program import DeviceProgram
    _, lm = lm_of("llama")
    calls = []
    real = DeviceProgram.run
    monkeypatch.setattr(DeviceProgram, "run", lambda self, ins: calls.append(
        (self.prog.name, [tuple(x.shape) for x in ins])) or real(self, ins))
    lm.generate(prompt(3), max_new_tokens=20)
    decode = [c for c in calls if c[0].startswith("decode.")]
    assert len(decode) == 19 and all(c == decode[0] for c in decode)
    step = next(s for s in lm.binary.plan if s.kind == "device" and lm.binary.programs[s.index].name == decode[0][0])
    shapes = dict(zip(step.inputs, decode[0][1]))
    assert shapes["decode/input_ids"] == shapes["decode/position_ids"] == (1, 1)   # one token per step
    assert shapes["decode/attention_mask"] == (1, S) and shapes["decode/index"] == (1,)
    assert [shapes[f"decode/cache_tensors_{i}"] for i in range(4)] == [(1, 2, S, 16)] * 4   # 2 layers x (k, v)
    ops = [op.name for p in lm.binary.programs if p.name.startswith("decode.") for op in p.ops]
    assert ops.count("ttir.update_cache") == 4 and "ttir.fill_cache" not in ops


def test_one_binary_holds_both_programs_and_the_weights_once(tmp_path):
    model, lm = lm_of("llama")
    path = tmp_path / "llama.ttb"
    lm.save(str(path))
    entries = {}
    for entry, cm in lm.programs.items():
        cm.save(str(tmp_path / f"{entry}.ttb"))
        entries[entry] = os.path.getsize(tmp_path / f"{entry}.ttb")
    weights = sum(p.numel() * 4 for p in model.parameters())
    assert os.path.getsize(path) < sum(entries.values()) - 0.9 * weights, "the second copy of the weights is shared"
    names = [p.name for p in lm.binary.programs]
    assert any(n.startswith("prefill_16.") for n in names) and any(n.startswith("decode.") for n in names)


def test_ttir_shows_cache_writes_and_parses(tmp_path):
    from tests.test_ttir import parse
    model = causal_lm("gpt2")
    lm = forge_fe.compile_lm(model, max_cache_len=32, prefill_buckets=[8],
                             compiler_cfg=forge_fe.CompilerConfig(dump_dir=str(tmp_path)))
    for entry, op in (("prefill_8", "ttir.fill_cache"), ("decode", "ttir.update_cache")):
        text = lm.binary.debug[f"{entry}/ttir.mlir"]
        assert f'"{op}"' in text
        parse(text)
        files = os.listdir(tmp_path / entry)
        assert f"GPT2LMHeadModel_{entry}_forge_module.py" in files and "12_ttir.mlir" in files
        assert "01_relax_imported.py" in files and "13_model.ttb" in files


def test_saved_binary_generates_in_a_fresh_process(tmp_path):
    model, lm = lm_of("llama", batch=2, buckets=(16, S))
    ids = prompt(5, batch=2, seed=5)
    path = tmp_path / "llama.ttb"
    lm.save(str(path))
    want = lm.generate(ids, max_new_tokens=10)
    code = ("import sys, json, torch, forge_fe\n"
            "lm = forge_fe.load(sys.argv[1])\n"
            "print(type(lm).__name__, json.dumps(lm.generate(torch.tensor(json.loads(sys.argv[2])), "
            "max_new_tokens=10).tolist()))\n")
    res = subprocess.run([sys.executable, "-c", code, str(path), json.dumps(ids.tolist())],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    kind, tokens = res.stdout.strip().splitlines()[-1].split(" ", 1)
    assert kind == "CompiledLM" and json.loads(tokens) == want.tolist()
    assert "memory-bound decode" in forge_fe.load(str(path)).report.summary()


def test_report_names_programs_speed_and_the_memory_bound_estimate():
    _, lm = lm_of("llama")
    d = lm.report.to_dict()
    assert set(d["programs"]) == {"prefill_16", "decode"}
    assert d["programs"]["decode"]["estimated_s"] > 0 and d["programs"]["decode"]["cpu_ops"] == 0
    mb = d["memory_bound_decode"]
    # layers x (k, v) x batch x kv heads x S rows x head_dim 16 padded to a 32-wide tile x f32
    assert mb["cache_bytes"] == 2 * 2 * 1 * 2 * S * 32 * 4
    assert mb["seconds_per_token"] == pytest.approx((mb["weight_bytes"] + mb["cache_bytes"]) / 288e9)
    text = lm.report.summary()
    assert "tokens/s" in text and "assumption:" in text


def test_bf16_follows_fp32_and_keeps_its_cache_in_place(monkeypatch):
    """In bf16 the cache is stored in its format once; later decode steps write the same tensors."""
    from forge_fe.generation.runtime import CompiledLM
    from forge_fe.verify import pcc
    _, fp32 = lm_of("llama")
    _, bf16 = lm_of("llama", compiler_cfg=forge_fe.CompilerConfig(default_df_override=forge_fe.DataFormat.Float16_b))
    ids = prompt(6)
    want = fp32.generate(ids, max_new_tokens=8)
    got = bf16.logits(ids, want[:, 6:-1])
    # bf16 rounding of weights and activations: the logits stay close to fp32's at every step
    assert min(pcc(g.numpy(), w.numpy()) for g, w in zip(got[0], fp32.logits(ids, want[:, 6:-1])[0])) > 0.999
    seen = []
    real = CompiledLM._decode
    monkeypatch.setattr(CompiledLM, "_decode", lambda self, tok, state: (real(self, tok, state),
                                                                         seen.append([id(t) for t in self._cache]))[0])
    bf16.generate(ids, max_new_tokens=6)
    assert len(seen) == 5 and all(s == seen[0] for s in seen), "every decode step writes the same cache tensors"


# ---- errors users see -----------------------------------------------------------------

def test_prompt_and_new_tokens_must_fit_the_cache():
    _, lm = lm_of("llama", batch=2, buckets=(16, S))
    with pytest.raises(InputError, match=r"prompt has 65 tokens, more than max_cache_len=64"):
        lm.generate(prompt(S + 1, batch=2), max_new_tokens=1)
    with pytest.raises(InputError, match=r"max_new_tokens=20 after a prompt of 50 tokens needs 70 cache slots"):
        lm.generate(prompt(50, batch=2), max_new_tokens=20)
    with pytest.raises(InputError, match=r"compiled for batch_size=2"):
        lm.generate(prompt(5, batch=1), max_new_tokens=2)
    _, small = lm_of("llama")
    with pytest.raises(InputError, match=r"largest prefill bucket \(16\)"):
        small.generate(prompt(20), max_new_tokens=2)


def test_generate_options_are_checked():
    _, lm = lm_of("llama")
    with pytest.raises(InputError, match="num_beams"):
        lm.generate(prompt(4), max_new_tokens=2, num_beams=2)
    with pytest.raises(InputError, match="temperature"):
        lm.generate(prompt(4), max_new_tokens=2, do_sample=True, temperature=0.0)
    with pytest.raises(InputError, match="outside the vocabulary"):
        lm.generate(torch.tensor([[1, 600]]), max_new_tokens=2)


def test_only_causal_lms_with_full_attention_caches_compile():
    from transformers import BertConfig, BertModel
    with pytest.raises(ForgeError, match="compile_lm takes a transformers causal LM"):
        forge_fe.compile_lm(torch.nn.Linear(4, 4))
    bert = BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64))
    with pytest.raises(ForgeError, match="not a decoder-only causal LM"):
        forge_fe.compile_lm(bert)
    penalised = causal_lm("gpt2")
    penalised.generation_config.repetition_penalty = 1.2      # HF generate would apply it; compile_lm cannot
    with pytest.raises(ForgeError, match=r"generation_config sets options .*repetition_penalty"):
        forge_fe.compile_lm(penalised, max_cache_len=S)
    mistral = causal_lm("mistral", sliding_window=8)
    with pytest.raises(ForgeError, match=r"unsupported cache type in layer 0 .*sliding window 8 < max_cache_len 64"):
        forge_fe.compile_lm(mistral, max_cache_len=S)
