"""A short captured training run shared by the capture tests: LeNet-5 on random 8x8 images, step 1 recorded."""

import dataclasses

import torch
from torch import nn

from golden.capture import TensorCapture, attach_capture, load_capture
from golden.layers import convert
from golden.models import LeNet5
from golden.recipes import get_recipe


def captured_lenet_run(tmp_path, recipe="ibm4-full", **capture_options):
    """Train two steps with every layer quantized, capture step 1; returns (path, records)."""
    torch.manual_seed(0)
    config = dataclasses.replace(get_recipe(recipe).quant, keep_first=False)
    model = convert(LeNet5(input_shape=(1, 8, 8), num_classes=10), config)
    cap = TensorCapture([1], **capture_options)
    attach_capture(model, cap)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(0)
    for step in range(2):
        x, y = torch.rand(8, 1, 8, 8, generator=gen), torch.randint(0, 10, (8,), generator=gen)
        with cap.step(step):
            loss = nn.functional.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
        opt.step()
    path = tmp_path / "cap.npz"
    cap.save(path)
    return path, load_capture(path)
