"""The PyTorch twin of actsearch's CIFAR ResNet, for loading `model.safetensors` by name.

actsearch writes weights under this module's `state_dict` names (the same layout as
`../shared/reference/pytorch_bench.py`: `stem.0`/`stem.1` for the stem conv/BN, `blocks.N.*`,
`fc`). Each activation site holds its per-channel parameters in `params.K`, shape [C].

Usage (needs torch and safetensors; --images also needs numpy and pillow):
    python3 python/resnet_torch.py RUN_DIR/model.safetensors [--images FOLDER]
loads the file with `load_state_dict(strict=True)` and runs one forward pass; with --images it
also reports the top-1 accuracy on FOLDER/test/<class>/*, normalized with the statistics stored
in the file's metadata. Activations are evaluated as ReLU here, so only a ReLU run's accuracy is
meaningful; for others the point is to check names and shapes.
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
    ap.add_argument("--images", default=None, help="image folder whose test/ split to score")
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
    if args.images:
        import json
        import os
        import numpy as np
        from PIL import Image
        mean = torch.tensor(json.loads(meta["normalize_mean"])).view(1, 3, 1, 1)
        std = torch.tensor(json.loads(meta["normalize_std"])).view(1, 3, 1, 1)
        classes = json.loads(meta["classes"])
        correct = total = 0
        for label, name in enumerate(classes):
            folder = os.path.join(args.images, "test", name)
            files = sorted(os.listdir(folder))
            batch = np.stack([np.asarray(Image.open(os.path.join(folder, f)).convert("RGB")) for f in files])
            x = (torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255 - mean) / std
            with torch.no_grad():
                pred = model(x).argmax(1)
            correct += int((pred == label).sum())
            total += len(files)
        print(f"test accuracy in PyTorch: {100 * correct / total:.2f}% on {total} images")
    sys.exit(0)
