"""The PyTorch twin of `actsearch eval` on a translation model: transformers_ref.Seq2Seq trained
by a loop that mirrors actsearch's, on exactly the batches actsearch trained on, then scored by
sacreBLEU on greedy translations.

    actsearch eval --network transformer-micro --activation gelu \
        --dataset ../shared/data/multi30k --seeds 0,1 --out runs/mt-twin --write-plan
    python3 python/translate_torch.py runs/mt-twin/seed-0 [--reference ../shared/reference]

It reads, from the run folder that `--write-plan` filled:
- config.json: the recipe (steps, evaluation interval, lr, warm-up, network, MLP, and the
  translation settings: languages, test set, label smoothing, dropout);
- tokenizer.json: actsearch's BPE vocabulary, read with the Python `tokenizers` package. The
  twin encodes the folder's pairs itself and checks that every training pair's ids are the
  plan's, so both tokenizers agree;
- plan.safetensors: every encoded training pair and the pairs of each step's batch;
- init.safetensors: actsearch's initial weights, loaded with strict=True.

The loop is actsearch's (train::driver with eval's WeightSteps and train::translate):
- a source is its tokens then end (id 3), a target begin (2), its tokens, end; padding is 0;
  the decoder reads the target but its last token and predicts it from the second on;
- the loss is cross-entropy with label smoothing, padding ignored; Adam with betas (0.9, 0.98),
  eps 1e-8 and no weight decay; the learning rate per step a linear warm-up over
  round(warmup * steps) steps reaching lr at the last of them, then cosine to 0;
- every `eval_interval` steps and at the last: the cross-entropy per target token of the
  validation pairs (no smoothing, eval mode), and the training loss as the token-weighted mean
  since the last evaluation;
- at the end: greedy translations of the validation and test sources (padding and begin never
  chosen, stopping at end or after source length + 50 tokens), scored by
  sacrebleu.corpus_bleu against the raw target lines.

Dropout draws from torch's generator (seeded with the run's seed), not actsearch's, so with
dropout above 0 the runs agree in distribution, not bit for bit; `--dropout 0` runs agree to
float precision. It writes torch_errors.json beside the run's errors.json and
torch_translations.txt.
"""
import gzip
import json
import math
import os
import sys
import time

import sacrebleu
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tokenizers import Tokenizer

import twin

PAD, BOS, EOS = 0, 2, 3
MAX_TOKENS = 256
MAX_LEN = 512
EXTRA_TOKENS = 50


def lr_at(step, base, steps, warmup):
    if step < warmup:
        return base * (step + 1) / warmup
    return 0.5 * base * (1.0 + math.cos(math.pi * (step - warmup) / (steps - warmup)))


def read_lines(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as f:
        return [line.rstrip("\n").rstrip("\r") for line in f]


def split_file(folder, split, lang):
    for name in (f"{split}.{lang}", f"{split}.{lang}.gz"):
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    sys.exit(f"translate_torch.py: {folder} has no {split}.{lang}")


def pairs(folder, split, source, target):
    """The split's pairs with text on both sides, as actsearch keeps them."""
    src, tgt = read_lines(split_file(folder, split, source)), read_lines(split_file(folder, split, target))
    kept = [(s, t) for s, t in zip(src, tgt) if s.strip() and t.strip()]
    return [s for s, _ in kept], [t for _, t in kept]


def encode(tok, lines, begin):
    out = []
    for enc in tok.encode_batch(lines, add_special_tokens=False):
        ids = ([BOS] if begin else []) + enc.ids + [EOS]
        if len(ids) > MAX_TOKENS:
            ids = ids[: MAX_TOKENS - 1] + [EOS]
        out.append(ids)
    return out


def pad(seqs):
    width = max(len(s) for s in seqs)
    return torch.tensor([s + [PAD] * (width - len(s)) for s in seqs], dtype=torch.long)


def batch(sources, targets):
    """The model's inputs and the target of each decoder position (padding where none)."""
    src = pad(sources)
    tgt_in = pad([t[:-1] for t in targets])
    tgt_out = pad([t[1:] for t in targets])
    return src, tgt_in, tgt_out


def by_length(seqs, rows):
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    return [order[i:i + rows] for i in range(0, len(order), rows)]


def validate(model, sources, targets, rows, vocab):
    model.eval()
    total, n = 0.0, 0
    with torch.no_grad():
        for chunk in by_length(sources, rows):
            src, tgt_in, tgt_out = batch([sources[i] for i in chunk], [targets[i] for i in chunk])
            logits = model(src, tgt_in).reshape(-1, vocab)
            total += F.cross_entropy(logits, tgt_out.reshape(-1), ignore_index=PAD, reduction="sum").item()
            n += int((tgt_out != PAD).sum())
    model.train()
    return total / n


def translate(model, sources, rows):
    """Greedy translations (ids after begin, up to end) of `sources`, as actsearch decodes."""
    model.eval()
    out = [None] * len(sources)
    with torch.no_grad():
        for chunk in by_length(sources, rows):
            src = pad([sources[i] for i in chunk])
            memory, memory_pad = model.encode(src)
            limits = [min(len(sources[i]) + EXTRA_TOKENS, MAX_LEN - 1) for i in chunk]
            hyps = [[] for _ in chunk]
            open_rows = list(range(len(chunk)))
            step = 0
            while open_rows:
                prefix = torch.tensor([[BOS] + hyps[r] for r in open_rows], dtype=torch.long)
                logits = model.decode(prefix, memory[open_rows], memory_pad[open_rows])[:, -1, :]
                logits[:, PAD] = float("-inf")
                logits[:, BOS] = float("-inf")
                nexts = logits.argmax(dim=-1).tolist()
                step += 1
                still = []
                for r, nxt in zip(open_rows, nexts):
                    if nxt == EOS:
                        continue
                    hyps[r].append(nxt)
                    if step < limits[r]:
                        still.append(r)
                open_rows = still
            for i, h in zip(chunk, hyps):
                out[i] = h
    model.train()
    return out


def main():
    args, tr, adamw, config, act = twin.setup(
        __doc__, "translate_torch.py", "`actsearch eval --network transformer-* --write-plan`")
    if not config["network"].startswith("transformer-"):
        sys.exit(f"translate_torch.py: {args.run} is not a translation run (network {config['network']})")
    t = config["translation"]
    torch.manual_seed(config["seed"])
    tok = Tokenizer.from_file(os.path.join(args.run, "tokenizer.json"))
    plan = load_file(os.path.join(args.run, "plan.safetensors"))

    def sequences(name):
        ids, offsets = plan[f"{name}_ids"].tolist(), plan[f"{name}_offsets"].tolist()
        return [ids[offsets[i]:offsets[i + 1]] for i in range(len(offsets) - 1)]

    train_src, train_tgt, rows = sequences("source"), sequences("target"), plan["rows"].tolist()
    folder = config["dataset"]
    src_lines, tgt_lines = pairs(folder, "train", t["source"], t["target"])
    if encode(tok, src_lines, False) != train_src or encode(tok, tgt_lines, True) != train_tgt:
        sys.exit("translate_torch.py: the Python tokenizer's ids differ from the plan's: the two tokenizers disagree")
    valid_text = pairs(folder, "val", t["source"], t["target"])
    test_text = pairs(folder, t["test_set"], t["source"], t["target"])
    valid = (encode(tok, valid_text[0], False), encode(tok, valid_text[1], True))
    test_src = encode(tok, test_text[0], False)

    init = load_file(os.path.join(args.run, "init.safetensors"))
    vocab = init["tgt_emb.weight"].shape[0]
    model = tr.Seq2Seq(config["network"], act, vocab, vocab, mlp=config.get("mlp", "standard"),
                       dropout=config.get("dropout", 0.0))
    model.load_state_dict(init, strict=True)
    model.train()
    opt = adamw(model, config["lr"], config["weight_decay"], betas=(0.9, 0.98))
    steps, interval = config["steps"], config["eval_interval"]
    if len(rows) != steps:
        sys.exit(f"translate_torch.py: the plan holds {len(rows)} steps, config.json {steps}")
    warmup = round(config.get("warmup", 0.0) * steps)
    eval_rows = min(config.get("eval_batch_size", 500), 256)

    history = {"step": [], "valid_loss": [], "train_loss": [], "seconds": []}
    started, loss_sum, tokens = time.time(), 0.0, 0
    for step in range(steps):
        src, tgt_in, tgt_out = batch([train_src[r] for r in rows[step]], [train_tgt[r] for r in rows[step]])
        logits = model(src, tgt_in).reshape(-1, vocab)
        loss = F.cross_entropy(logits, tgt_out.reshape(-1), ignore_index=PAD, label_smoothing=t["label_smoothing"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if config.get("grad_clip"):
            torch.nn.utils.clip_grad_norm_(model.parameters(), config["grad_clip"])
        for group in opt.param_groups:
            group["lr"] = lr_at(step, config["lr"], steps, warmup)
        opt.step()
        n = int((tgt_out != PAD).sum())
        loss_sum, tokens = loss_sum + loss.item() * n, tokens + n
        if (step + 1) % interval == 0 or step + 1 == steps:
            valid_loss = validate(model, valid[0], valid[1], eval_rows, vocab)
            history["step"].append(step + 1)
            history["valid_loss"].append(valid_loss)
            history["train_loss"].append(loss_sum / tokens)
            history["seconds"].append(time.time() - started)
            print(f"step {step + 1}/{steps} | train loss {history['train_loss'][-1]:.4f} | "
                  f"valid loss {valid_loss:.4f} | {history['seconds'][-1]:.1f}s", flush=True)
            loss_sum, tokens = 0.0, 0
    text = ""
    for name, sources, refs in (("valid", valid[0], valid_text[1]), ("test", test_src, test_text[1])):
        hyps = [tok.decode(h, skip_special_tokens=True) for h in translate(model, sources, 64)]
        history[f"{name}_bleu"] = [sacrebleu.corpus_bleu(hyps, [refs]).score]
        print(f"{name} BLEU {history[f'{name}_bleu'][0]:.2f}", flush=True)
        if name == "test":
            for s, r, h in zip(test_text[0], refs, hyps):
                text += f"source: {s}\nreference: {r}\nhypothesis: {h}\n\n"
    history["seconds_total"] = time.time() - started
    with open(os.path.join(args.run, "torch_translations.txt"), "w", encoding="utf-8") as f:
        f.write(text)
    with open(os.path.join(args.run, "torch_errors.json"), "w") as f:
        json.dump(history, f, indent=2)


if __name__ == "__main__":
    main()
