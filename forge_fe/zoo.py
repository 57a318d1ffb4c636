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


MODELS = {"resnet50": resnet50, "resnet_tiny": resnet_tiny, "bert_base": bert_base, "bert_tiny": bert_tiny}
