"""The PyTorch twin of `actsearch eval` on a Vision Transformer: transformers_ref.ViT trained by a
loop that mirrors actsearch's, on exactly the data actsearch trained on.

    actsearch eval --network vit-micro --activation gelu --epochs 10 --subset 10000 \
        --seeds 0,1 --out runs/vit-twin --write-plan
    python3 python/vit_torch.py runs/vit-twin/seed-0 [--reference ../shared/reference]

It reads, from the run folder that `--write-plan` filled:
- config.json: the recipe (epochs, batch size, lr, weight decay, warm-up, clipping, network, MLP);
- plan.safetensors: the training and test images as bytes, the normalization, and for every
  epoch the order of the training images and each image's crop and flip;
- init.safetensors: actsearch's initial weights, loaded with strict=True, so both start from the
  same point.

The loop is actsearch's (train::driver with eval's WeightSteps):
- batches of `batch_size` in the plan's order, the last partial batch kept unless it holds one
  image (a training loader never yields a batch of one);
- each image zero-padded by 4 as bytes, cropped at the plan's (x, y), mirrored where the plan
  says, then (byte / 255 - mean) / std in float32;
- AdamW (betas 0.9, 0.999, eps 1e-8), weight decay on parameters of two or more dimensions
  (pytorch_bench.adamw), the global gradient norm clipped, the learning rate per step: a linear
  warm-up over round(warmup * steps) steps reaching lr at the last of them, then cosine to 0 over
  the rest;
- after every epoch, the loss and accuracy on the whole test split (eval mode); the epoch's
  training loss is the mean over its images, as actsearch's meter takes it.

It writes torch_errors.json beside the run's errors.json (test_acc, test_loss, train_loss per
epoch) and prints one line per epoch. The activation must be one transformers_ref.named knows
(relu, gelu, silu, elu, tanh), or pass --act-module FILE written by
`actsearch export ACTIVATION --to pytorch --layout features`.
"""
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

import twin

PAD = 4



def inputs(padded, index, crop, mean, std):
    """The batch `index` (image numbers) as actsearch's loader builds it."""
    out = torch.empty(len(index), 3, 32, 32, dtype=torch.uint8)
    for k, i in enumerate(index.tolist()):
        x, y, flip = crop[i].tolist()
        img = padded[i, :, y:y + 32, x:x + 32]
        out[k] = img.flip(-1) if flip else img
    return (out.float() / 255.0 - mean) / std


def lr_at(step, base, steps, warmup):
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1.0 + math.cos(math.pi * (step - warmup) / (steps - warmup)))


def batches_per_epoch(n, size):
    rest = n % size
    return n // size + (1 if rest > 1 else 0)


def evaluate(model, images, labels, mean, std, batch):
    model.eval()
    loss, correct = 0.0, 0
    with torch.no_grad():
        for s in range(0, len(labels), batch):
            x = (images[s:s + batch].float() / 255.0 - mean) / std
            logits = model(x)
            loss += F.cross_entropy(logits, labels[s:s + batch], reduction="sum").item()
            correct += (logits.argmax(1) == labels[s:s + batch]).sum().item()
    model.train()
    return loss / len(labels), 100.0 * correct / len(labels)


def main():
    args, tr, adamw, config, act = twin.setup(__doc__, "vit_torch.py", "`actsearch eval --write-plan`")
    if config.get("optimizer") != "adamw":
        sys.exit(f"vit_torch.py: {args.run} is not a ViT run with AdamW (network {config['network']})")
    plan = load_file(os.path.join(args.run, "plan.safetensors"))
    mean, std = plan["mean"].view(1, 3, 1, 1), plan["std"].view(1, 3, 1, 1)
    train_labels, test_labels = plan["train_labels"], plan["test_labels"]
    padded = F.pad(plan["train_images"], (PAD, PAD, PAD, PAD))
    order, crop = plan["order"], plan["crop"].long()
    classes = int(max(train_labels.max(), test_labels.max()).item()) + 1

    model = tr.ViT(config["network"], act, classes=classes, mlp=config.get("mlp", "standard"))
    model.load_state_dict(load_file(os.path.join(args.run, "init.safetensors")), strict=True)
    model.train()
    opt = adamw(model, config["lr"], config["weight_decay"])
    size, epochs = config["batch_size"], config["epochs"]
    n = len(train_labels)
    per_epoch = batches_per_epoch(n, size)
    steps = epochs * per_epoch
    warmup = round(config.get("warmup", 0.0) * steps)
    clip = config.get("grad_clip")
    eval_batch = config.get("eval_batch_size", 500)

    history = {"test_acc": [], "test_loss": [], "train_loss": [], "seconds": []}
    step = 0
    for epoch in range(epochs):
        started, losses, seen = time.time(), [], 0
        for b in range(per_epoch):
            index = order[epoch, b * size:(b + 1) * size]
            x = inputs(padded, index, crop[epoch], mean, std)
            loss = F.cross_entropy(model(x), train_labels[index])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            for group in opt.param_groups:
                group["lr"] = lr_at(step, config["lr"], steps, warmup)
            opt.step()
            losses.append(loss.item() * len(index))
            seen += len(index)
            step += 1
        test_loss, test_acc = evaluate(model, plan["test_images"], test_labels, mean, std, eval_batch)
        history["train_loss"].append(sum(losses) / seen)
        history["test_loss"].append(test_loss)
        history["test_acc"].append(test_acc)
        history["seconds"].append(time.time() - started)
        print(f"epoch {epoch + 1}/{epochs} | train loss {history['train_loss'][-1]:.4f} | "
              f"test loss {test_loss:.4f} acc {test_acc:.2f}% | {history['seconds'][-1]:.1f}s", flush=True)
    with open(os.path.join(args.run, "torch_errors.json"), "w") as f:
        json.dump(history, f, indent=2)


if __name__ == "__main__":
    main()
