"""The PyTorch twin of `actsearch eval` on a character GPT: transformers_ref.GPT trained by a loop
that mirrors actsearch's, on exactly the windows actsearch trained on.

    actsearch eval --network gpt-micro --activation gelu \
        --dataset ../shared/data/tinyshakespeare/input.txt --seeds 0,1,2 --out runs/gpt-twin --write-plan
    python3 python/gpt_torch.py runs/gpt-twin/seed-0 [--reference ../shared/reference]

It reads, from the run folder that `--write-plan` filled:
- config.json: the recipe (steps, evaluation interval, batch size, lr, weight decay, warm-up,
  clipping, network, MLP);
- plan.safetensors: the training and validation text as ids, and where each window of each
  step's batch starts;
- init.safetensors: actsearch's initial weights, loaded with strict=True, so both start from the
  same point.

The loop is actsearch's (train::driver with eval's WeightSteps and train::text's batches):
- step s trains on `batch_size` windows of the block length at the plan's starts, each
  predicting the next character of every position (cross-entropy over the whole batch);
- AdamW with nanoGPT's betas (0.9, 0.99), eps 1e-8, weight decay on parameters of two or more
  dimensions (pytorch_bench.adamw), the global gradient norm clipped, the learning rate per
  step: a linear warm-up over round(warmup * steps) steps reaching lr at the last of them, then
  cosine to a tenth of lr over the rest;
- every `eval_interval` steps and at the last, the mean cross-entropy over every
  non-overlapping window of the validation text (the last window ends where a whole one still
  fits with its next character), in batches of `eval_batch_size` windows, in eval mode.

With dropout (gpt-mini's 0.2), the masks come from torch's generator, seeded with the run's
seed, not from actsearch's: the runs then agree in distribution, not bit for bit.

It writes torch_errors.json beside the run's errors.json (step, valid_loss, valid_bpc,
train_loss per evaluation, seconds) and prints one line per evaluation. The activation must be
one transformers_ref.named knows (relu, gelu, silu, elu, tanh), or pass --act-module FILE
written by `actsearch export ACTIVATION --to pytorch --layout features`.
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

FLOOR = 0.1  # the cosine ends at this fraction of lr (nanoGPT's min_lr = lr / 10)


def lr_at(step, base, steps, warmup):
    if step < warmup:
        return base * (step + 1) / warmup
    floor = FLOOR * base
    return floor + 0.5 * (base - floor) * (1.0 + math.cos(math.pi * (step - warmup) / (steps - warmup)))


def windows(ids, starts, length):
    """The inputs [rows, length] at `starts` and their targets one id later."""
    offsets = starts[:, None] + torch.arange(length)[None, :]
    return ids[offsets], ids[offsets + 1]


def validate(model, valid, length, rows, vocab):
    """The mean cross-entropy over every non-overlapping validation window."""
    model.eval()
    count = (len(valid) - 1) // length
    starts = torch.arange(count) * length
    total, n = 0.0, 0
    with torch.no_grad():
        for s in range(0, count, rows):
            x, y = windows(valid, starts[s:s + rows], length)
            total += F.cross_entropy(model(x).view(-1, vocab), y.reshape(-1), reduction="sum").item()
            n += y.numel()
    model.train()
    return total / n


def main():
    args, tr, adamw, config, act = twin.setup(__doc__, "gpt_torch.py", "`actsearch eval --network gpt-* --write-plan`")
    if not config["network"].startswith("gpt-"):
        sys.exit(f"gpt_torch.py: {args.run} is not a GPT run (network {config['network']})")
    plan = load_file(os.path.join(args.run, "plan.safetensors"))
    train, valid, starts = plan["train_ids"], plan["valid_ids"], plan["starts"]
    length = int(plan["len"][0])
    init = load_file(os.path.join(args.run, "init.safetensors"))
    vocab = init["wte.weight"].shape[0]

    torch.manual_seed(config["seed"])
    model = tr.GPT(config["network"], act, vocab=vocab, mlp=config.get("mlp", "standard"), dropout=config.get("dropout", 0.0))
    model.load_state_dict(init, strict=True)
    model.train()
    opt = adamw(model, config["lr"], config["weight_decay"], betas=(0.9, 0.99))
    steps, interval = config["steps"], config["eval_interval"]
    if len(starts) != steps:
        sys.exit(f"gpt_torch.py: the plan holds {len(starts)} steps, config.json {steps}")
    warmup = round(config.get("warmup", 0.0) * steps)
    clip = config.get("grad_clip")
    eval_rows = config.get("eval_batch_size", 500)

    history = {"step": [], "valid_loss": [], "valid_bpc": [], "train_loss": [], "seconds": []}
    started, losses = time.time(), []
    for step in range(steps):
        x, y = windows(train, starts[step], length)
        loss = F.cross_entropy(model(x).view(-1, vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        for group in opt.param_groups:
            group["lr"] = lr_at(step, config["lr"], steps, warmup)
        opt.step()
        losses.append(loss.item())
        if (step + 1) % interval == 0 or step + 1 == steps:
            valid_loss = validate(model, valid, length, eval_rows, vocab)
            history["step"].append(step + 1)
            history["valid_loss"].append(valid_loss)
            history["valid_bpc"].append(valid_loss / math.log(2))
            history["train_loss"].append(sum(losses) / len(losses))
            history["seconds"].append(time.time() - started)
            print(f"step {step + 1}/{steps} | train loss {history['train_loss'][-1]:.4f} | "
                  f"valid loss {valid_loss:.4f} ({valid_loss / math.log(2):.4f} bpc) | "
                  f"{history['seconds'][-1]:.1f}s", flush=True)
            losses = []
    with open(os.path.join(args.run, "torch_errors.json"), "w") as f:
        json.dump(history, f, indent=2)


if __name__ == "__main__":
    main()
