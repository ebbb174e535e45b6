"""A whole PyTorch training run, the twin of `actsearch eval --network resnet20 --activation relu`.

For measuring only (issue 26's end-to-end target): it is never a dependency of actsearch. It trains
the reference ResNet of ../shared/reference/pytorch_bench.py the way `actsearch eval` does by
default: SGD (lr 0.1, momentum 0.9, weight decay 5e-4), a cosine schedule stepped per epoch, pad-4
crop and flip augmentation, normalization with the CIFAR-10 means, and a test pass after each epoch.

Images come from an extracted image-folder archive (DIR/train/CLASS/*.jpg, DIR/test/CLASS/*.jpg), as
`actsearch` unpacks ../shared/data/cifar10-images.tar.xz under --data-dir/extracted. Decoding is timed
apart from training, since actsearch keeps decoded images in its cache.

    /tmp/torchref/bin/pip install pillow
    /tmp/torchref/bin/python scripts/pytorch-run.py /tmp/data/extracted/cifar10-images.tar.xz/cifar10 \
        --epochs 2 --subset 10000 --test-subset 1000

Prints one line per epoch and a JSON summary: {"decode_s", "train_s", "eval_s", "total_s", "test_acc"}.
"""
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def load(split_dir, limit, seed):
    """A seeded random `limit` of the split's images as uint8 NHWC, with their labels."""
    classes = sorted(os.listdir(split_dir))
    files = [(os.path.join(split_dir, c, f), k) for k, c in enumerate(classes)
             for f in sorted(os.listdir(os.path.join(split_dir, c)))]
    order = np.random.default_rng(seed).permutation(len(files))[:limit] if limit else range(len(files))
    images = np.stack([np.asarray(Image.open(files[i][0]).convert("RGB")) for i in order])
    labels = torch.tensor([files[i][1] for i in order])
    return torch.from_numpy(images), labels


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", help="the extracted folder holding train/ and test/")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--subset", type=int, default=10000)
    ap.add_argument("--test-subset", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--eval-batch-size", type=int, default=500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reference", default=os.path.join(os.path.dirname(__file__), "../../shared/reference"))
    args = ap.parse_args()
    sys.path.insert(0, args.reference)
    import pytorch_bench as pb

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    train_x, train_y = load(os.path.join(args.data, "train"), args.subset, 0)
    test_x, test_y = load(os.path.join(args.data, "test"), args.test_subset, 1)
    decode_s = time.perf_counter() - t0

    gen = torch.Generator().manual_seed(0)
    model = pb.ResNet(3, lambda c: torch.nn.ReLU())
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    train_s = eval_s = 0.0
    for epoch in range(args.epochs):
        for group in opt.param_groups:
            group["lr"] = 0.05 * (1 + math.cos(math.pi * epoch / args.epochs))
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(len(train_x), generator=gen)
        for k in range(0, len(order), args.batch_size):
            idx = order[k:k + args.batch_size]
            opt.zero_grad()
            F.cross_entropy(model(pb.augment(train_x[idx], gen)), train_y[idx]).backward()
            opt.step()
        epoch_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        model.eval()
        correct = 0
        with torch.no_grad():
            for k in range(0, len(test_x), args.eval_batch_size):
                x = (test_x[k:k + args.eval_batch_size].permute(0, 3, 1, 2).float() / 255 - pb.MEAN) / pb.STD
                correct += (model(x).argmax(1) == test_y[k:k + args.eval_batch_size]).sum().item()
        test_s = time.perf_counter() - t0
        train_s, eval_s = train_s + epoch_s, eval_s + test_s
        acc = correct / len(test_x)
        print(f"epoch {epoch + 1}/{args.epochs} | train {epoch_s:.1f}s | test acc {100 * acc:.2f}% ({test_s:.1f}s)",
              flush=True)
    print(json.dumps({"decode_s": round(decode_s, 2), "train_s": round(train_s, 2), "eval_s": round(eval_s, 2),
                      "total_s": round(train_s + eval_s, 2), "test_acc": acc, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
