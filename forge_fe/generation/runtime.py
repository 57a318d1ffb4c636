"""`CompiledLM`: generation with the prefill and decode programs of one binary.

The KV cache lives in the runtime as one tensor per layer and kind ([B, kv_heads, S, head_dim],
allocated once): every program takes it as inputs and returns it, and the cache writes
(ttir.fill_cache / ttir.update_cache) update the tensors in place, since the runtime donates
them to the programs (DeviceProgram.donate). A step therefore costs the same at every position:
no prefix is re-run, and the decode program's shapes do not depend on the position.

Per sequence the runtime keeps what transformers' generate() keeps: the attention mask (over
cache slots) and the next position id; it chooses tokens with HF's rules (sampling.py) and stops a
sequence at its eos token, padding it afterwards with pad_token_id, as HF does.
"""
from __future__ import annotations

import json

import torch

from forge_fe.binary import model as bm
from forge_fe.errors import CompileStopped, InputError
from forge_fe.generation import sampling

_OPTIONS = ("attention_mask", "do_sample", "temperature", "top_k", "top_p", "generator", "eos_token_id",
            "pad_token_id")


class CompiledLM:
    def __init__(self, binary: bm.Binary | None, meta: dict, report, programs: dict | None = None):
        self.binary = binary
        self.meta = meta
        self.report = report
        #: {entry: CompiledModel} of each program as forge_fe.compile returned it (None when loaded)
        self.programs = programs
        self.max_cache_len = meta["max_cache_len"]
        self.batch_size = meta["batch_size"]
        self.prefill_buckets = meta["prefill_buckets"]
        self._executor = None
        self._cache = None

    @classmethod
    def from_binary(cls, binary: bm.Binary) -> "CompiledLM":
        meta = json.loads(binary.output_structure)["lm"]
        return cls(binary, meta, LMReport(meta, None, binary))

    # ---- running programs ----
    @property
    def executor(self):
        if self._executor is None:
            if self.binary is None:
                raise CompileStopped("runtime", "compilation stopped early; there is no binary to run",
                                     "compile with CompileDepth.FULL to generate")
            from forge_fe.device.executor import Executor
            self._executor = Executor(self.binary)
            for entry in self.meta["entries"].values():
                caches = set(entry["inputs"][4:])
                for i in entry["steps"]:
                    step = self.binary.plan[i]
                    if step.kind == "device":
                        self._executor.programs[step.index].donate(
                            [k for k, n in enumerate(step.inputs) if n in caches])
            self._cache = [torch.zeros(c["shape"], dtype=getattr(torch, c["dtype"])) for c in self.meta["cache"]]
        return self._executor

    def _run(self, entry: str, ids, positions, mask, index) -> torch.Tensor:
        """One program: returns the logits [B, 1, V]; the cache tensors are updated."""
        layout = self.meta["entries"][entry]
        ex = self.executor
        env = dict(ex.constants)
        env.update(zip(layout["inputs"], [ids, positions, mask, index] + self._cache))
        with torch.no_grad():
            env = ex.run_steps([self.binary.plan[i] for i in layout["steps"]], env)
        outs = [env[n] for n in layout["outputs"]]
        self._cache = outs[1:]          # the same tensors when written in place
        return outs[0]

    # ---- generation ----
    def _settings(self, options: dict, max_new_tokens, prompt_len: int) -> dict:
        gen = self.meta["generation"]
        s = {k: options[k] if options.get(k) is not None else gen[k]
             for k in ("do_sample", "temperature", "top_k", "top_p", "pad_token_id")}
        eos = options.get("eos_token_id")
        eos = gen["eos_token_id"] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
        s["eos"] = torch.tensor(eos, dtype=torch.long)
        if s["pad_token_id"] is None:
            s["pad_token_id"] = eos[0] if eos else 0       # HF: pad with the (first) eos token
        if max_new_tokens is None:     # HF: generation_config.max_new_tokens, else max_length (default 20)
            max_new_tokens = gen["max_new_tokens"] or gen["max_length"] - prompt_len
        s["max_new_tokens"] = max_new_tokens
        if s["do_sample"]:
            sampling.check_options(s["temperature"], s["top_k"], s["top_p"])
        return s

    def _check_prompt(self, input_ids, attention_mask, max_new_tokens):
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
            raise InputError(f"input_ids must be an integer torch tensor [batch, length]; got "
                             f"{type(input_ids).__name__}{list(getattr(input_ids, 'shape', []))}",
                             "e.g. tokenizer(text, return_tensors='pt').input_ids")
        b, n = input_ids.shape
        if b != self.batch_size:
            raise InputError(f"input_ids has batch {b}; the LM was compiled for batch_size={self.batch_size}",
                             f"recompile with compile_lm(..., batch_size={b}), or pad the batch")
        if n < 1:
            raise InputError("input_ids is empty: the prompt needs at least one token")
        if n > self.max_cache_len:
            raise InputError(f"the prompt has {n} tokens, more than max_cache_len={self.max_cache_len}",
                             f"shorten the prompt or recompile with compile_lm(..., max_cache_len>={n})")
        if n > self.prefill_buckets[-1]:
            raise InputError(f"the prompt has {n} tokens, more than the largest prefill bucket "
                             f"({self.prefill_buckets[-1]})", f"recompile with prefill_buckets including >= {n}")
        vocab = self.meta["vocab_size"]
        if int(input_ids.min()) < 0 or int(input_ids.max()) >= vocab:
            raise InputError(f"input_ids hold token ids outside the vocabulary [0, {vocab})",
                             "use the tokenizer of this model")
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise InputError(f"max_new_tokens={max_new_tokens!r}: it must be a positive integer")
        if n + max_new_tokens > self.max_cache_len:
            raise InputError(f"max_new_tokens={max_new_tokens} after a prompt of {n} tokens needs {n + max_new_tokens} "
                             f"cache slots; max_cache_len is {self.max_cache_len}",
                             f"ask for at most {self.max_cache_len - n} new tokens, or recompile with "
                             f"compile_lm(..., max_cache_len>={n + max_new_tokens})")
        if attention_mask is None:
            return torch.ones_like(input_ids, dtype=torch.long)
        if not isinstance(attention_mask, torch.Tensor) or tuple(attention_mask.shape) != (b, n):
            raise InputError(f"attention_mask must be a tensor of the prompt's shape {[b, n]}; got "
                             f"{list(getattr(attention_mask, 'shape', []))}")
        mask = attention_mask.long()
        if ((mask != 0) & (mask != 1)).any() or (mask.sum(-1) == 0).any():
            raise InputError("attention_mask must hold 0/1 with at least one 1 per sequence",
                             "1 marks a prompt token, 0 padding (left padding, as for HF generate)")
        return mask

    def stream(self, input_ids, max_new_tokens=None, **options):
        """Yield the next token of every sequence ([batch] LongTensor) as soon as it is chosen."""
        unknown = sorted(set(options) - set(_OPTIONS))
        if unknown:
            raise InputError(f"generate() options compile_lm does not implement: {', '.join(unknown)}",
                             f"supported: max_new_tokens, {', '.join(_OPTIONS)}")
        s = self._settings(options, max_new_tokens, input_ids.shape[-1] if hasattr(input_ids, "shape") else 0)
        mask = self._check_prompt(input_ids, options.get("attention_mask"), s["max_new_tokens"])
        return self._stream(input_ids.long(), mask, s, options.get("generator"))

    def _prefill(self, ids, mask):
        """Run the prompt; returns (its next-token logits [B, V], the per-sequence state for decode)."""
        b, n = ids.shape
        bucket = min(p for p in self.prefill_buckets if p >= n)
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)    # as HF's generate
        slots = torch.zeros((b, self.max_cache_len), dtype=torch.long)
        slots[:, :n] = mask
        padded_ids = torch.zeros((b, bucket), dtype=torch.long)
        padded_ids[:, :n] = ids
        padded_pos = torch.zeros((b, bucket), dtype=torch.long)
        padded_pos[:, :n] = positions
        logits = self._run(f"prefill_{bucket}", padded_ids, padded_pos, slots, torch.tensor([n - 1]))
        return logits[:, -1, :].float(), {"slot": n, "slots": slots, "next_pos": positions[:, -1:] + 1}

    def _decode(self, tok, state):
        """Append one token per sequence at the next slot; returns the next logits [B, V]."""
        slot = state["slot"]
        state["slots"][:, slot] = 1
        logits = self._run("decode", tok[:, None], state["next_pos"], state["slots"], torch.tensor([slot]))
        state["slot"], state["next_pos"] = slot + 1, state["next_pos"] + 1
        return logits[:, -1, :].float()

    def _stream(self, ids, mask, s, generator):
        logits, state = self._prefill(ids, mask)
        unfinished = torch.ones(ids.shape[0], dtype=torch.bool)
        for i in range(s["max_new_tokens"]):
            tok = sampling.next_tokens(logits, s["do_sample"], s["temperature"], s["top_k"], s["top_p"], generator)
            if len(s["eos"]):
                tok = torch.where(unfinished, tok, torch.full_like(tok, s["pad_token_id"]))
                unfinished &= ~torch.isin(tok, s["eos"])
            yield tok
            if not unfinished.any() or i == s["max_new_tokens"] - 1:
                return
            logits = self._decode(tok, state)

    def logits(self, input_ids, continuation=None, attention_mask=None) -> torch.Tensor:
        """The next-token logits after the prompt and after each token of `continuation` ([batch, k],
        fed in as if generated: teacher forcing): float32 [batch, k + 1, vocab]. The device's numbers,
        to compare formats or frameworks token by token."""
        k = 0 if continuation is None else continuation.shape[1]
        mask = self._check_prompt(input_ids, attention_mask, k + 1)
        logits, state = self._prefill(input_ids.long(), mask)
        out = [logits]
        for i in range(k):
            out.append(self._decode(continuation[:, i].long(), state))
        return torch.stack(out, dim=1)

    def generate(self, input_ids, max_new_tokens=None, **options) -> torch.LongTensor:
        """Prompt + new tokens [batch, length + new], like HF's generate (greedy unless do_sample)."""
        new = list(self.stream(input_ids, max_new_tokens, **options))
        return torch.cat([input_ids.long(), torch.stack(new, dim=1)], dim=1)

    def save(self, path: str):
        if self.binary is None:
            raise CompileStopped("binary", "compilation stopped early; there is no binary to save")
        from forge_fe import binary as binio
        binio.write(self.binary, path)

    def __repr__(self):
        return f"<CompiledLM {self.meta['model']}: batch {self.batch_size}, max_cache_len {self.max_cache_len}>"


class LMReport:
    """Placement and estimated speed of each program (decode: ms per token, tokens/s), plus the
    memory-bound decode estimate: bytes of weights and KV cache read per token / DRAM bandwidth."""

    def __init__(self, meta: dict, reports: dict | None, binary: bm.Binary | None):
        self.meta = meta
        self.reports = reports or {}        # entry -> CompileReport (compile time only)
        self.programs = _program_rows(meta, binary) if binary is not None else {}
        self.memory_bound = _memory_bound(meta, binary) if binary is not None else {}
        #: multi-chip: each entry's mesh section (docs/mesh.md), when compiled for a mesh
        self.mesh = {e: json.loads(binary.debug[f"{e}/mesh.json"]) for e in meta.get("entries", {})
                     if f"{e}/mesh.json" in binary.debug} if binary is not None else {}

    def to_dict(self) -> dict:
        d = {"model": self.meta["model"], "batch_size": self.meta["batch_size"],
             "max_cache_len": self.meta["max_cache_len"], "prefill_buckets": self.meta["prefill_buckets"],
             "programs": self.programs, "memory_bound_decode": self.memory_bound}
        if self.mesh:
            d["mesh"] = self.mesh
        return d

    def summary(self) -> str:
        m = self.meta
        lines = [f"LM {m['model']}: batch {m['batch_size']}, max_cache_len {m['max_cache_len']}, "
                 f"prefill buckets {m['prefill_buckets']} (a prompt runs the smallest bucket that holds it, "
                 "right-padded)"]
        for entry, r in self.programs.items():
            per = "per token" if entry == "decode" else "per prefill"
            rate = f", {1 / r['estimated_s']:.0f} tokens/s" if entry == "decode" and r["estimated_s"] else ""
            lines.append(f"  {entry:<12} ops {r['ops']:>5} (device {r['device_ops']}, cpu {r['cpu_ops']})  "
                         f"segments {r['segments']}  est. {r['estimated_s'] * 1e3:.3f} ms {per}{rate} ({r['arch']})")
            for op, n in r["cpu"].items():
                lines.append(f"      on CPU: {op} x{n}")
        mb = self.memory_bound
        if mb:
            lines.append(f"  memory-bound decode: ({mb['weight_bytes'] / 1e6:.2f} MB weights + "
                         f"{mb['cache_bytes'] / 1e6:.2f} MB KV cache) / {mb['dram_bandwidth'] / 1e9:.0f} GB/s = "
                         f"{mb['seconds_per_token'] * 1e3:.3f} ms per token ({mb['tokens_per_s']:.0f} tokens/s)")
            lines.append(f"    assumption: {mb['assumption']}")
        return "\n".join(lines)


def _entry_programs(meta, binary, entry):
    for i in meta["entries"][entry]["steps"]:
        step = binary.plan[i]
        if step.kind == "device" and not binary.programs[step.index].private:
            yield step, binary.programs[step.index]


def _program_rows(meta: dict, binary: bm.Binary) -> dict:
    from collections import Counter
    rows = {}
    for entry, layout in meta["entries"].items():
        placement = json.loads(binary.debug.get(f"{entry}/placement.json", "[]"))
        perf = json.loads(binary.debug.get(f"{entry}/perf.json", "{}"))
        kinds = Counter(binary.plan[i].kind for i in layout["steps"]
                        if binary.plan[i].kind == "cpu" or not binary.programs[binary.plan[i].index].private)
        where = Counter(r["where"] for r in placement)
        rows[entry] = {"ops": len(placement), "device_ops": where.get("device", 0), "cpu_ops": where.get("cpu", 0),
                       "segments": f"{kinds.get('device', 0)} device + {kinds.get('cpu', 0)} cpu",
                       "cpu": dict(Counter(f"{r['op']} ({r['reason']})" for r in placement if r["where"] == "cpu")),
                       "estimated_s": perf.get("estimated_latency_s", 0.0),
                       "arch": perf.get("arch", binary.system.arch)}
    return rows


def _memory_bound(meta: dict, binary: bm.Binary) -> dict:
    """Decode is memory-bound on the chip: the bytes every token must read, over the DRAM bandwidth."""
    from forge_fe.device.perf_model import tensor_bytes
    layout = meta["entries"]["decode"]
    caches = set(layout["inputs"][4:])
    weight_bytes = cache_bytes = 0.0
    for step, prog in _entry_programs(meta, binary, "decode"):
        for idx in prog.constants:
            weight_bytes += tensor_bytes(prog.tensors[idx])
        for name, idx in zip(step.inputs, prog.inputs):
            if name in caches:
                cache_bytes += tensor_bytes(prog.tensors[idx])
            elif name not in layout["inputs"]:           # const-eval results and plan constants: weights
                weight_bytes += tensor_bytes(prog.tensors[idx])
    bw = binary.system.dram_bandwidth
    seconds = (weight_bytes + cache_bytes) / bw
    return {"weight_bytes": weight_bytes, "cache_bytes": cache_bytes, "dram_bandwidth": bw,
            "seconds_per_token": seconds, "tokens_per_s": 1 / seconds if seconds else 0.0,
            "assumption": "each decode step reads every weight and the whole static KV cache (max_cache_len "
                          "slots, in their data formats) from DRAM once, at the full DRAM bandwidth of "
                          f"{binary.system.arch}; no reuse across steps, compute and activations ignored"}

