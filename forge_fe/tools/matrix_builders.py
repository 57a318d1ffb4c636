"""Builders for the model matrix's declarative entries: one call per model, built the way users build it.

Every factory returns a `forge_fe.tools.matrix.MatrixCase` whose `build(size)` gives (model, sample_inputs):

    hf("llama", DECODER)                                  # AutoConfig.for_model + AutoModel.from_config
    hf("t5", SEQ2SEQ, push=dict(d_kv=16))                 # reduced sizes: the kind's preset + overrides
    timm_model("resnet18", push_image=32)                 # timm.create_model(pretrained=False)
    torchvision_model("mobilenet_v3_small")               # torchvision.models.get_model(weights=None)
    diffusers_model("UNet2DModel", push=dict(...))        # diffusers model class from a config dict
    lm_generation("llama")                                # compile_lm + greedy generate vs HF generate

`push` is the reduced size (in the default test run), `nightly` the released size: for transformers
the config's own defaults unless the entry names the smallest released checkpoint's config. Models
are built with the library's defaults (default attention implementation, use_cache, mask and cache
code), random weights, and nothing is downloaded. A `Kind` names the inputs a family takes, its
outputs and its reduced-size preset, so most entries are one line.
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from forge_fe.tools.matrix import MatrixCase

os.environ.setdefault("HF_HUB_OFFLINE", "1")        # configs and random weights only: never a download
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


# ---- inputs ----------------------------------------------------------------------------------------
# An input rule maps (config, size) -> {forward argument name: tensor}, in the order they are passed.

def _ids(cfg, shape, seed=0):
    import torch
    g = torch.Generator().manual_seed(seed)
    vocab = getattr(cfg, "vocab_size", None) or 512
    return torch.randint(3, vocab, shape, generator=g)     # ids 0-2 are the presets' special tokens


def _seq(size, push=16, nightly=128):
    return push if size == "push" else nightly


def tokens(cfg, size):
    return {"input_ids": _ids(cfg, (1, _seq(size)))}


def tokens_and_mask(cfg, size):
    """Token ids with a padded tail, so the library's attention-mask path runs."""
    import torch
    seq = _seq(size)
    mask = torch.ones(1, seq, dtype=torch.long)
    mask[:, seq - seq // 4:] = 0
    return {"input_ids": _ids(cfg, (1, seq)), "attention_mask": mask}


def seq2seq_tokens(cfg, size):
    seq = _seq(size)
    return {"input_ids": _ids(cfg, (1, seq)), "decoder_input_ids": _ids(cfg, (1, seq // 2), seed=1)}


def _randn(*shape, seed=0):
    import torch
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _square(value):
    return value if isinstance(value, int) else value[0]


def pixels(cfg, size):
    """pixel_values at the config's image size and channel count."""
    image = _square(getattr(cfg, "image_size", 224))
    return {"pixel_values": _randn(1, getattr(cfg, "num_channels", 3), image, image)}


def waveform(cfg, size):
    return {"input_values": _randn(1, 4000 if size == "push" else 16000)}


def mel_features(cfg, size):
    """Log-mel frames (Whisper-style encoders: 2 x max_source_positions frames)."""
    frames = 2 * getattr(cfg, "max_source_positions", 1500)
    return {"input_features": _randn(1, getattr(cfg, "num_mel_bins", 80), frames)}


def image_nchw(image, channels=3):
    def rule(cfg, size):
        side = image[size] if isinstance(image, dict) else image
        return {"x": _randn(1, channels, side, side)}
    return rule


# ---- kinds: a family's inputs, outputs and reduced-size preset -----------------------------------------

TEXT_PRESET = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                   intermediate_size=128, vocab_size=512, max_position_embeddings=128, pad_token_id=0,
                   bos_token_id=1, eos_token_id=2)
VISION_PRESET = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                     image_size=32, patch_size=8)


@dataclass(frozen=True)
class Kind:
    label: str                                   # the report's architecture kind
    inputs: Callable                             # (config, size) -> {name: tensor}
    outputs: tuple = ("last_hidden_state",)      # fields of the model's output, in order
    preset: dict = field(default_factory=dict)   # reduced-size config arguments (push)


ENCODER = Kind("encoder", tokens_and_mask, preset=TEXT_PRESET)
DECODER = Kind("decoder-only", tokens, preset=TEXT_PRESET)
SEQ2SEQ = Kind("encoder-decoder", seq2seq_tokens, preset={**TEXT_PRESET, "d_model": 64, "encoder_layers": 2,
                                                          "decoder_layers": 2, "encoder_attention_heads": 4,
                                                          "decoder_attention_heads": 4, "encoder_ffn_dim": 128,
                                                          "decoder_ffn_dim": 128, "decoder_start_token_id": 0})
VISION = Kind("vision transformer", pixels, preset=VISION_PRESET)
CNN = Kind("CNN", pixels, outputs=("pooler_output",), preset=dict(image_size=32))
AUDIO = Kind("audio encoder", waveform, preset=dict(
    hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
    conv_dim=(32, 32, 32), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2), num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=4, num_feat_extract_layers=3))


# ---- transformers ----------------------------------------------------------------------------------------

def _quiet_transformers():
    import transformers
    transformers.logging.set_verbosity_error()
    return transformers


def _perturb(model, seed=0):
    """Fresh transformers models have zero biases and unit norms; random ones exercise every weight."""
    from forge_fe.zoo import _hf_init
    return _hf_init(model, seed)


def _reduced(model_type: str, preset: dict, overrides: dict) -> dict:
    """The kind's preset under the entry's overrides, without the preset arguments this config cannot
    take: properties (a value derived from others, or a refusing setter such as Funnel's
    num_hidden_layers) and standard names (attribute_map) whose target the entry sets itself."""
    from transformers import CONFIG_MAPPING
    cls = CONFIG_MAPPING[model_type]
    aliases = getattr(cls, "attribute_map", {}) or {}
    keep = {}
    for key, value in preset.items():
        if isinstance(getattr(cls, key, None), property):
            continue
        if aliases.get(key) in overrides:
            continue
        keep[key] = value
    return {**keep, **overrides}


def hf(model_type: str, kind: Kind, push: dict | None = None, nightly: dict | None = None, *, name: str | None = None,
       arch: str | None = None, inputs: Callable | None = None, outputs: tuple | None = None,
       model_class: str = "AutoModel", note: str = "", **case) -> MatrixCase:
    """A transformers model: AutoConfig.for_model(model_type, ...) -> <model_class>.from_config, defaults kept.

    push: config arguments over the kind's preset; nightly: the released configuration's arguments
    (None: the config's defaults, which are the family's reference checkpoint)."""
    inputs = inputs or kind.inputs
    fields = outputs or kind.outputs

    def build(size):
        import torch
        transformers = _quiet_transformers()
        from forge_fe.zoo import HiddenStates
        args = _reduced(model_type, kind.preset, push or {}) if size == "push" else dict(nightly or {})
        cfg = transformers.AutoConfig.for_model(model_type, **args)
        torch.manual_seed(0)
        cls = getattr(transformers, model_class)
        model = _perturb(cls.from_config(cfg) if model_class.startswith("Auto") else cls(cfg))
        named = inputs(cfg, size)
        return HiddenStates(model, tuple(named), fields).eval(), list(named.values())

    label = f"{kind.label} (transformers {model_type}{', ' + note if note else ''})"
    return MatrixCase(name or model_type.replace("-", "_"), "pytorch", label, build, arch=arch or model_type, **case)


# ---- timm, torchvision -----------------------------------------------------------------------------------

def _image_input(size, push_image, image):
    side = push_image if size == "push" else image
    return [_randn(1, 3, side, side)]


def timm_model(name: str, push: dict | None = None, *, arch: str | None = None, kind: str = "CNN",
               push_image: int = 32, image: int = 224, push_name: str | None = None, **case) -> MatrixCase:
    """timm.create_model(name, pretrained=False); push: `push_name` (a smaller family member) or `name`
    with the `push` constructor arguments, at push_image pixels and 10 classes."""
    def build(size):
        import timm
        import torch
        torch.manual_seed(0)
        if size == "push":
            model = timm.create_model(push_name or name, pretrained=False, num_classes=10, **(push or {}))
        else:
            model = timm.create_model(name, pretrained=False)
        from forge_fe.zoo import _randomize_bn
        _randomize_bn(model, 0)
        return model.eval(), _image_input(size, push_image, image)
    return MatrixCase(name.replace(".", "_"), "pytorch", f"{kind} (timm {name})", build,
                      arch=arch or name.split("_")[0], **case)


def torchvision_model(name: str, push: dict | None = None, *, arch: str | None = None, kind: str = "CNN",
                      push_image: int = 32, image: int = 224, outputs: Callable | None = None,
                      inputs: Callable | None = None, **case) -> MatrixCase:
    """torchvision.models.get_model(name, weights=None) (and weights_backbone=None where it has a backbone)."""
    def build(size):
        import torch
        import torchvision
        torch.manual_seed(0)
        kwargs = {"weights": None, **((push or {}) if size == "push" else {})}
        builder = torchvision.models.get_model_builder(name)
        if "weights_backbone" in inspect.signature(builder).parameters:
            kwargs["weights_backbone"] = None
        model = builder(**kwargs)
        from forge_fe.zoo import _randomize_bn
        _randomize_bn(model, 0)
        model = model.eval()
        xs = inputs(size) if inputs else _image_input(size, push_image, image)
        return (outputs(model) if outputs else model), xs
    return MatrixCase(name, "pytorch", f"{kind} (torchvision {name})", build, arch=arch or name, **case)


class OutputField:
    """Wraps a model whose output is a dict (torchvision segmentation: {'out': ...}) or a
    dataclass-like object, returning the named fields as a tuple (one tensor when one field)."""

    def __new__(cls, model, *fields):
        import torch.nn as nn

        class Picked(nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, *args):
                out = self.model(*args)
                got = tuple(out[f] if isinstance(out, dict) else getattr(out, f) for f in fields)
                return got if len(got) > 1 else got[0]
        return Picked().eval()


# ---- diffusers -------------------------------------------------------------------------------------------

def diffusers_model(cls_name: str, push: dict, nightly: dict | None, inputs: Callable, *, name: str,
                    arch: str | None = None, kind: str = "diffusion", output: str = "sample",
                    constants: dict | None = None, **case) -> MatrixCase:
    """A diffusers model class built from a config dict (random weights). `inputs(size, config)` gives the
    tensor arguments of forward, `constants` its fixed non-tensor ones; the output field `output` is
    compared. Without a `nightly` config (a released model too large for this machine) it runs at push only."""
    def build(size):
        import diffusers
        import torch
        torch.manual_seed(0)
        config = push if size == "push" else nightly
        model = _perturb(getattr(diffusers, cls_name).from_config(config))
        named = inputs(size, config)

        class Call(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, *args):
                out = self.model(**dict(zip(named, args)), **(constants or {}), return_dict=True)
                return getattr(out, output)
        return Call().eval(), list(named.values())
    tiers = ("push", "nightly") if nightly is not None else ("push",)
    return MatrixCase(name, "pytorch", f"{kind} (diffusers {cls_name})", build, arch=arch or name,
                      tiers=tiers, **case)


# ---- generation (forge_fe.compile_lm) ---------------------------------------------------------------------

def lm_generation(arch: str, new: int = 32, prompt: int = 8, **case) -> MatrixCase:
    """A generation row: the causal LM of forge_fe.generation.models (a transformers config, random
    weights; push: its tiny size) compiled with compile_lm, `new` greedy tokens after a `prompt`-token
    prompt compared with HF generate(do_sample=False) (MatrixCase.generate). The framework is
    "pytorch-generate", so these rows sit apart from the forward-pass rows of the same architecture."""
    from forge_fe.generation.models import ARCHS

    def build(size):
        from forge_fe.generation.models import causal_lm
        model = causal_lm(arch, "tiny" if size == "push" else "100m")
        model.generation_config.eos_token_id = None      # compare every new token (eos: tests/test_generation.py)
        return model, [_ids(model.config, (1, prompt))]
    label = f"greedy generation, {new} tokens (transformers {ARCHS[arch][1]})"
    return MatrixCase(arch, "pytorch-generate", label, build, arch=arch, tiers=("push",), generate=new, **case)


# ---- ONNX exports of pytorch entries ----------------------------------------------------------------------

def onnx_export(case: MatrixCase, opset: int, dynamo: bool = False, **overrides) -> MatrixCase:
    """The pytorch entry exported to ONNX at `opset` (TorchScript exporter, or dynamo), compiled from the
    onnx.ModelProto and compared with onnxruntime's outputs on the same file."""
    import io
    import warnings

    def build(size):
        import onnx
        import torch
        model, inputs = case.build(size)
        names = [f"input_{i}" for i in range(len(inputs))]
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            if dynamo:
                proto = torch.onnx.export(model, tuple(inputs), input_names=names, opset_version=opset,
                                          dynamo=True).model_proto
            else:
                buf = io.BytesIO()
                torch.onnx.export(model, tuple(inputs), buf, input_names=names, opset_version=opset, dynamo=False)
                proto = onnx.load_model_from_string(buf.getvalue())
        return proto, [x.numpy() for x in inputs]
    exporter = "dynamo exporter" if dynamo else "TorchScript exporter"
    args = dict(name=f"{case.name}_opset{opset}", framework="onnx", kind=f"{case.kind}, {exporter}, opset {opset}",
                build=build, arch=case.arch, tiers=case.tiers, xfail={}, formats=(), pcc_min=case.pcc_min,
                rtol=case.rtol, atol=case.atol)
    args.update(overrides)
    return MatrixCase(**args)


def numpy_inputs(xs):
    return [np.asarray(x) for x in xs]
