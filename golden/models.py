"""Plain PyTorch models of the benchmark: an MLP, a LeNet-5-class CNN, a small ResNet and a
character-level GPT.

They are ordinary ``nn.Module`` networks built from ``nn.Linear``,
``nn.Conv2d``, ``nn.ReLU``, ``nn.MaxPool2d``, ``nn.Flatten`` and (ResNet only)
``nn.BatchNorm2d`` modules, in data-flow order, so that
:func:`golden.layers.convert` can swap their layers for the quantized ones.
The GPT adds ``nn.Embedding``, ``nn.LayerNorm``, ``nn.GELU``, ``nn.Softmax``,
``nn.Dropout`` and :class:`MatMul` (attention's two activation products, a
module so that :func:`golden.layers.convert` can find and quantize them).
"""

import math

import torch
from torch import nn

__all__ = ["MLP", "LeNet5", "ResNet", "GPT", "MatMul", "MODELS", "IMAGE_MODELS", "build_model"]


class MLP(nn.Sequential):
    """Multi-layer perceptron: Flatten, then ``depth`` x (Linear, ReLU), then Linear.

    Parameters
    ----------
    input_shape : tuple of int
        (C, H, W) of one input image.
    num_classes : int
    hidden : int
        Width of the hidden layers.
    depth : int
        Number of hidden layers.
    """

    def __init__(self, *, input_shape, num_classes, hidden=256, depth=2):
        if depth < 1 or hidden < 1:
            raise ValueError("MLP needs depth >= 1 and hidden >= 1")
        n_in = 1
        for s in input_shape:
            n_in *= s
        layers = [nn.Flatten()]
        for _ in range(depth):
            layers += [nn.Linear(n_in, hidden), nn.ReLU()]
            n_in = hidden
        layers.append(nn.Linear(n_in, num_classes))
        super().__init__(*layers)


class LeNet5(nn.Sequential):
    """LeNet-5-class CNN: two 5x5 'same' convolutions (6, 16 channels) with ReLU and 2x2
    max pooling, then three fully connected layers (120, 84, classes).

    Parameters
    ----------
    input_shape : tuple of int
        (C, H, W); H and W must be multiples of 4.
    num_classes : int
    """

    def __init__(self, *, input_shape, num_classes):
        c, h, w = input_shape
        if h % 4 or w % 4:
            raise ValueError(f"LeNet5 needs H and W multiples of 4, got {h}x{w}")
        super().__init__(
            nn.Conv2d(c, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * (h // 4) * (w // 4), 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )


class BasicBlock(nn.Module):
    """ResNet basic block: conv3x3-BN-ReLU-conv3x3-BN plus (projected) shortcut, then ReLU."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        self.relu2 = nn.ReLU()

    def forward(self, x):
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu2(y + self.shortcut(x))


class ResNet(nn.Module):
    """Small CIFAR-style ResNet: a 3x3 stem and one basic block per stage (widths 16, 32, 64),
    global average pooling and a linear classifier (8 weight layers with the shortcut projections).

    Parameters
    ----------
    input_shape : tuple of int
        (C, H, W).
    num_classes : int
    widths : tuple of int
        Channels of the three stages.
    """

    def __init__(self, *, input_shape, num_classes, widths=(16, 32, 64)):
        super().__init__()
        c = input_shape[0]
        self.stem = nn.Conv2d(c, widths[0], 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm2d(widths[0])
        self.stem_relu = nn.ReLU()
        blocks, c_in = [], widths[0]
        for i, w in enumerate(widths):
            blocks.append(BasicBlock(c_in, w, 1 if i == 0 else 2))
            c_in = w
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x):
        x = self.stem_relu(self.stem_bn(self.stem(x)))
        return self.fc(self.flatten(self.pool(self.blocks(x))))


class MatMul(nn.Module):
    """``a @ b`` of two activations, as a module (the attention products Q K^T and A V).

    Parameters
    ----------
    a_kind, b_kind : {"signed", "probability"}
        What each operand holds, for the quantizer :func:`golden.layers.convert` gives it:
        values of either sign, or probabilities in [0, 1] (softmax outputs).
    """

    def __init__(self, *, a_kind="signed", b_kind="signed"):
        super().__init__()
        self.a_kind, self.b_kind = a_kind, b_kind

    def forward(self, a, b):
        return a @ b


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: one Linear for Q, K, V, the two products, an output Linear."""

    def __init__(self, dim, heads, context, dropout):
        super().__init__()
        if dim % heads:
            raise ValueError(f"GPT dim {dim} is not a multiple of heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.scores = MatMul()  # Q K^T
        self.softmax = nn.Softmax(dim=-1)
        self.attn_dropout = nn.Dropout(dropout)
        self.mix = MatMul(a_kind="probability")  # A V
        self.proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("causal", torch.ones(context, context, dtype=torch.bool).tril(), persistent=False)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.reshape(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        scores = self.scores(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(c // self.heads))
        scores = scores.masked_fill(~self.causal[:t, :t], float("-inf"))
        mixed = self.mix(self.attn_dropout(self.softmax(scores)), v)
        return self.dropout(self.proj(mixed.transpose(1, 2).reshape(b, t, c)))


class TransformerBlock(nn.Module):
    """Pre-norm transformer block: ``x + attention(LN(x))``, then ``x + MLP(LN(x))`` (GELU, 4x wide)."""

    def __init__(self, dim, heads, context, dropout):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = CausalSelfAttention(dim, heads, context, dropout)
        self.ln2 = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, 4 * dim)
        self.gelu = nn.GELU()
        self.fc_proj = nn.Linear(4 * dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.dropout(self.fc_proj(self.gelu(self.fc(self.ln2(x)))))


class GPT(nn.Module):
    """Decoder-only character-level GPT (nanoGPT's "baby GPT" shape by default).

    Token and position embeddings, ``layers`` pre-norm blocks, a final
    LayerNorm and a linear head to the vocabulary (untied). Input: ``B x T``
    token ids (``T <= context``); output: ``B x T x vocab`` logits.

    Parameters
    ----------
    vocab : int
    context : int
        Longest sequence (positions).
    layers, heads, dim : int
    dropout : float
    """

    def __init__(self, *, vocab, context=64, layers=4, heads=4, dim=128, dropout=0.0):
        super().__init__()
        for label, value in (("vocab", vocab), ("context", context), ("layers", layers), ("heads", heads)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"GPT {label} must be a positive int, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"GPT dropout must be in [0, 1), got {dropout!r}")
        self.context = context
        self.tok = nn.Embedding(vocab, dim)
        self.pos = nn.Embedding(context, dim)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.Sequential(*(TransformerBlock(dim, heads, context, dropout) for _ in range(layers)))
        self.ln_f = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab)
        # GPT-2 initialization (as nanoGPT): N(0, 0.02), residual projections scaled by 1/sqrt(2 layers).
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "fc_proj.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx):
        t = idx.shape[1]
        if t > self.context:
            raise ValueError(f"GPT: sequence of {t} tokens exceeds the context {self.context}")
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        return self.head(self.ln_f(self.blocks(self.dropout(x))))


#: Image model name -> constructor(input_shape=, num_classes=).
IMAGE_MODELS = {"mlp": MLP, "lenet5": LeNet5, "resnet": ResNet}
#: Every model name -> constructor (image models as IMAGE_MODELS; "gpt": GPT(vocab=, ...)).
MODELS = {**IMAGE_MODELS, "gpt": GPT}


def build_model(name, *, input_shape, num_classes):
    """Build an image model by name; unknown names raise ValueError listing the valid ones."""
    if name not in IMAGE_MODELS:
        raise ValueError(f"unknown image model {name!r}; valid: {', '.join(IMAGE_MODELS)}")
    return IMAGE_MODELS[name](input_shape=tuple(input_shape), num_classes=num_classes)
