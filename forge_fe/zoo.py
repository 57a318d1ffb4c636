"""Reference models built from code with random weights (nothing is downloaded).

Used by the demo, the tests and the benchmarks. Each builder returns
(model, sample_inputs) with a fixed seed so runs are repeatable.
"""
from __future__ import annotations

import torch
import torch.nn as nn


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, width, stride=1):
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet(nn.Module):
    """torchvision's ResNet (v1.5: stride on the 3x3 conv), written out so no torchvision is needed."""

    def __init__(self, layers=(3, 4, 6, 3), num_classes=1000, base=64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, base, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = base
        self.stages = [f"layer{i + 1}" for i in range(len(layers))]
        for i, n in enumerate(layers):
            width = base * 2 ** i
            stage = []
            for j in range(n):
                stage.append(Bottleneck(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = width * Bottleneck.expansion
            setattr(self, self.stages[i], nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stages:
            x = getattr(self, name)(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _randomize_bn(model: nn.Module, seed: int):
    """Random running statistics, so batch-norm folding is actually exercised."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)


def resnet50(batch=1, image=224, seed=0):
    torch.manual_seed(seed)
    model = ResNet((3, 4, 6, 3)).eval()
    _randomize_bn(model, seed)
    return model, [torch.randn(batch, 3, image, image)]


def resnet_tiny(batch=1, image=32, seed=0):
    """A two-stage bottleneck ResNet for fast tests (same op mix as ResNet-50)."""
    torch.manual_seed(seed)
    model = ResNet((1, 1), num_classes=10, base=8).eval()
    _randomize_bn(model, seed)
    return model.eval(), [torch.randn(batch, 3, image, image)]


class BertEncoder(nn.Module):
    """transformers BertModel with (input_ids, attention_mask) -> (last_hidden_state, pooler_output)."""

    def __init__(self, config):
        super().__init__()
        from transformers import BertModel
        self.bert = BertModel(config, add_pooling_layer=True).eval()

    def forward(self, input_ids, attention_mask):
        out = self.bert(input_ids=input_ids, attention_mask=attention_mask)
        return out.last_hidden_state, out.pooler_output


def _bert(config_kwargs, batch, seq, seed):
    from transformers import BertConfig
    torch.manual_seed(seed)
    cfg = BertConfig(attn_implementation="eager", **config_kwargs)
    model = BertEncoder(cfg).eval()
    ids = torch.randint(0, cfg.vocab_size, (batch, seq))
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[:, seq - seq // 4:] = 0          # padded tail, so the mask path is exercised
    return model, [ids, mask]


def bert_base(batch=1, seq=128, seed=0):
    return _bert({}, batch, seq, seed)   # BertConfig defaults are bert-base: 12 layers, 768 hidden


def bert_tiny(batch=1, seq=32, seed=0):
    return _bert(dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
                      vocab_size=500, max_position_embeddings=64), batch, seq, seed)


# ---- the model matrix's PyTorch architectures (tests/models) -------------------------------
# Each has a full-size builder (a released configuration) and a `_tiny` one with the same op
# mix at sizes that compile in seconds. transformers models are built from configs.

def _hf_init(model: nn.Module, seed: int):
    """Fresh transformers models have zero biases and unit norms; random ones exercise every weight."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return model.eval()


class HiddenStates(nn.Module):
    """A transformers model called with positional tensors (bound to `arg_names`), returning plain
    tensors: the named output fields (one tensor when there is one field)."""

    def __init__(self, model, arg_names=("input_ids",), fields=("last_hidden_state",)):
        super().__init__()
        self.model = model
        self.arg_names = arg_names
        self.fields = fields

    def forward(self, *args):
        out = self.model(**dict(zip(self.arg_names, args)))
        return tuple(out[f] for f in self.fields) if len(self.fields) > 1 else out[self.fields[0]]


def _causal_lm(config_cls, kwargs, seq, seed, model_cls_name):
    import transformers
    torch.manual_seed(seed)
    cfg = config_cls(attn_implementation="eager", use_cache=False, **kwargs)
    model = _hf_init(getattr(transformers, model_cls_name)(cfg), seed)
    return HiddenStates(model).eval(), [torch.randint(0, cfg.vocab_size, (1, seq))]


def gpt2(seq=128, seed=0, **overrides):
    """Decoder-only transformer with learned positions and GELU (GPT-2 small by default)."""
    from transformers import GPT2Config
    return _causal_lm(GPT2Config, overrides, seq, seed, "GPT2Model")


def gpt2_tiny(seq=32, seed=0):
    return gpt2(seq, seed, n_layer=2, n_embd=64, n_head=4, vocab_size=500, n_positions=64,
                bos_token_id=0, eos_token_id=0)


def llama(seq=128, seed=0, **overrides):
    """Decoder-only with RMSNorm, rotary positions, SwiGLU and grouped-query attention
    (SmolLM-135M's configuration by default)."""
    from transformers import LlamaConfig
    kw = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
              num_key_value_heads=3, vocab_size=49152, max_position_embeddings=2048, tie_word_embeddings=True)
    return _causal_lm(LlamaConfig, {**kw, **overrides}, seq, seed, "LlamaModel")


def llama_tiny(seq=32, seed=0):
    return llama(seq, seed, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=500, max_position_embeddings=64)


def t5(seq=64, seed=0, **overrides):
    """Encoder-decoder with relative position buckets (t5-small by default): decoder hidden states."""
    from transformers import T5Config, T5Model
    torch.manual_seed(seed)
    cfg = T5Config(use_cache=False, **overrides)
    model = _hf_init(T5Model(cfg), seed)
    ids = torch.randint(0, cfg.vocab_size, (1, seq))
    return HiddenStates(model, ("input_ids", "decoder_input_ids")).eval(), [ids, torch.randint(0, cfg.vocab_size, (1, seq // 2))]


def t5_tiny(seq=16, seed=0):
    return t5(seq, seed, d_model=64, d_ff=128, d_kv=16, num_layers=2, num_heads=4, vocab_size=500)


def vit(image=224, seed=0, **overrides):
    """Vision transformer (ViT-B/16 by default): patch embedding conv, encoder, pooled output."""
    from transformers import ViTConfig, ViTModel
    torch.manual_seed(seed)
    cfg = ViTConfig(image_size=image, attn_implementation="eager", **overrides)
    model = _hf_init(ViTModel(cfg), seed)
    return HiddenStates(model, ("pixel_values",), ("last_hidden_state", "pooler_output")).eval(), [
        torch.randn(1, 3, image, image)]


def vit_tiny(image=32, seed=0):
    return vit(image, seed, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
               intermediate_size=128)


def whisper_encoder(seed=0, **overrides):
    """Audio encoder: log-mel frames -> two conv1d + GELU -> transformer (whisper-base by default)."""
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder
    torch.manual_seed(seed)
    kw = dict(d_model=512, encoder_layers=6, encoder_attention_heads=8, encoder_ffn_dim=2048)
    cfg = WhisperConfig(attn_implementation="eager", **{**kw, **overrides})
    model = _hf_init(WhisperEncoder(cfg), seed)
    frames = 2 * cfg.max_source_positions
    return HiddenStates(model, ("input_features",)).eval(), [torch.randn(1, cfg.num_mel_bins, frames)]


def whisper_encoder_tiny(seed=0):
    return whisper_encoder(seed, d_model=64, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128,
                           num_mel_bins=16, max_source_positions=32)


def convnext(image=224, seed=0, **overrides):
    """ConvNeXt (convnext-tiny by default): depthwise 7x7 convs, channels-last LayerNorm, GELU MLPs."""
    from transformers import ConvNextConfig, ConvNextModel
    torch.manual_seed(seed)
    cfg = ConvNextConfig(image_size=image, **overrides)
    model = _hf_init(ConvNextModel(cfg), seed)
    return HiddenStates(model, ("pixel_values",), ("pooler_output",)).eval(), [torch.randn(1, 3, image, image)]


def convnext_tiny(image=32, seed=0):
    return convnext(image, seed, hidden_sizes=[16, 32], depths=[1, 1], num_stages=2)


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = [] if expand == 1 else [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False), nn.BatchNorm2d(hidden),
                   nn.ReLU6(), nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV2(nn.Module):
    """torchvision's MobileNetV2 (depthwise-separable inverted residuals, ReLU6), written out."""
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]

    def __init__(self, width=1.0, num_classes=1000, stages=7):
        super().__init__()
        c = int(32 * width)
        layers = [nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU6()]
        for t, ch, n, s in self.SETTINGS[:stages]:
            for i in range(n):
                layers.append(InvertedResidual(c, int(ch * width), s if i == 0 else 1, t))
                c = int(ch * width)
        last = int(1280 * max(1.0, width)) if stages == 7 else 4 * c
        layers += [nn.Conv2d(c, last, 1, bias=False), nn.BatchNorm2d(last), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(last, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).mean((2, 3)))


def mobilenet_v2(batch=1, image=224, seed=0):
    torch.manual_seed(seed)
    model = MobileNetV2().eval()
    _randomize_bn(model, seed)
    return model, [torch.randn(batch, 3, image, image)]


def mobilenet_v2_tiny(batch=1, image=32, seed=0):
    torch.manual_seed(seed)
    model = MobileNetV2(width=0.25, num_classes=10, stages=3).eval()
    _randomize_bn(model, seed)
    return model, [torch.randn(batch, 3, image, image)]


class UNet(nn.Module):
    """U-Net: conv blocks, max-pool down, transposed-conv up, skip concatenation."""

    def __init__(self, base=64, depth=4, cin=3, classes=2):
        super().__init__()

        def block(a, b):
            return nn.Sequential(nn.Conv2d(a, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU(),
                                 nn.Conv2d(b, b, 3, padding=1), nn.BatchNorm2d(b), nn.ReLU())
        chans = [base * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList([block(cin, chans[0])] + [block(chans[i], chans[i + 1]) for i in range(depth)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(chans[i + 1], chans[i], 2, 2) for i in reversed(range(depth))])
        self.dec = nn.ModuleList([block(2 * chans[i], chans[i]) for i in reversed(range(depth))])
        self.head = nn.Conv2d(chans[0], classes, 1)

    def forward(self, x):
        skips = []
        for i, blk in enumerate(self.down):
            x = blk(x if i == 0 else nn.functional.max_pool2d(x, 2))
            skips.append(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips[:-1])):
            x = dec(torch.cat([up(x), skip], dim=1))
        return self.head(x)


def unet(batch=1, image=256, seed=0):
    torch.manual_seed(seed)
    model = UNet().eval()
    _randomize_bn(model, seed)
    return model, [torch.randn(batch, 3, image, image)]


def unet_tiny(batch=1, image=32, seed=0):
    torch.manual_seed(seed)
    model = UNet(base=8, depth=2).eval()
    _randomize_bn(model, seed)
    return model, [torch.randn(batch, 3, image, image)]


class LSTMClassifier(nn.Module):
    """Embedding -> 2-layer LSTM -> linear on the last step (a recurrent model: loops in the graph)."""

    def __init__(self, vocab=10000, hidden=512, layers=2, classes=10):
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.lstm = nn.LSTM(hidden, hidden, layers, batch_first=True)
        self.fc = nn.Linear(hidden, classes)

    def forward(self, ids):
        out, _ = self.lstm(self.embed(ids))
        return self.fc(out[:, -1])


def lstm(seq=128, seed=0):
    torch.manual_seed(seed)
    return LSTMClassifier().eval(), [torch.randint(0, 10000, (1, seq))]


def lstm_tiny(seq=16, seed=0):
    torch.manual_seed(seed)
    return LSTMClassifier(500, 32, 2).eval(), [torch.randint(0, 500, (1, seq))]


MODELS = {"resnet50": resnet50, "resnet_tiny": resnet_tiny, "bert_base": bert_base, "bert_tiny": bert_tiny}
