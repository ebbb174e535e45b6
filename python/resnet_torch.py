"""The PyTorch twin of actsearch's CIFAR ResNet, for loading `model.safetensors` by name.

actsearch writes weights under this module's `state_dict` names (the same layout as
`../shared/reference/pytorch_bench.py`: `stem.0`/`stem.1` for the stem conv/BN, `blocks.N.*`,
`fc`). Each activation site holds its per-channel parameters in `params.K`, shape [C].

Usage (needs torch and safetensors):
    python3 python/resnet_torch.py RUN_DIR/model.safetensors [--network resnet20]
loads the file with `load_state_dict(strict=True)` and runs one forward pass. Only activations
without parameters are evaluated here (relu, silu, ...): the point is to check names and shapes.
"""
import argparse
import sys

import torch
import torch.nn as nn
from safetensors.torch import load_file


class Act(nn.Module):
    def __init__(self, channels, num_params):
        super().__init__()
        self.params = nn.ParameterList([nn.Parameter(torch.ones(channels)) for _ in range(num_params)])

    def forward(self, x):  # names and shapes are what matters here
        return torch.relu(x)


class Block(nn.Module):
    def __init__(self, cin, cout, stride, num_params):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = Act(cout, num_params)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act2 = Act(cout, num_params)
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(y)) + self.short(x))


class ResNet(nn.Module):
    def __init__(self, n, num_classes=10, num_params=0):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16))
        self.act = Act(16, num_params)
        blocks, cin = [], 16
        for stage, cout in enumerate((16, 32, 64)):
            for i in range(n):
                blocks.append(Block(cin, cout, 2 if stage > 0 and i == 0 else 1, num_params))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = self.blocks(self.act(self.stem(x)))
        return self.fc(x.mean(dim=(2, 3)))


DEPTHS = {"resnet8": 1, "resnet20": 3, "resnet32": 5, "resnet44": 7, "resnet56": 9, "resnet110": 18}

if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("weights")
    ap.add_argument("--network", default=None, help="default: read from the file's metadata")
    args = ap.parse_args()
    state = load_file(args.weights)
    from safetensors import safe_open
    with safe_open(args.weights, "pt") as f:
        meta = f.metadata() or {}
    network = args.network or meta.get("network", "resnet20")
    num_classes = state["fc.weight"].shape[0]
    num_params = sum(1 for k in state if k.startswith("act.params."))
    model = ResNet(DEPTHS[network], num_classes, num_params)
    model.load_state_dict(state, strict=True)
    model.eval()
    out = model(torch.randn(2, 3, 32, 32))
    print(f"loaded {len(state)} tensors into {network} (strict); logits shape {tuple(out.shape)}")
    sys.exit(0)
