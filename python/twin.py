"""What the PyTorch twins (vit_torch.py, gpt_torch.py) share: their command line, the run's
config.json, the reference modules, and the activation of the run as a PyTorch module."""
import argparse
import importlib.util
import json
import os
import sys

import torch


def setup(doc, script, what):
    """Parses the twin's arguments; returns them, transformers_ref, pytorch_bench.adamw and the
    run's config.json, with torch's threads set. `what` describes the run folder it reads."""
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("run", help=f"a run folder written by {what} (seed-N)")
    parser.add_argument("--reference", default=os.path.join(here, "..", "..", "shared", "reference"),
                        help="the folder of transformers_ref.py and pytorch_bench.py")
    parser.add_argument("--act-module", help="an activation module from `actsearch export --layout features`")
    parser.add_argument("--threads", type=int, help="torch threads [default: the run's]")
    args = parser.parse_args()

    sys.path.insert(0, args.reference)
    import transformers_ref as tr
    from pytorch_bench import adamw

    with open(os.path.join(args.run, "config.json")) as f:
        config = json.load(f)
    torch.set_num_threads(args.threads or config.get("threads") or 2)
    return args, tr, adamw, config, activation(config, args.act_module, tr, script)


def activation(config, act_module, tr, script):
    """The run's activation: the exported module given, or a function transformers_ref names."""
    if act_module:
        spec = importlib.util.spec_from_file_location("exported_activation", act_module)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.Activation
    formula = config["activation"]
    name = formula[: -len("(x)")] if formula.endswith("(x)") else formula
    if name not in ("relu", "gelu", "silu", "elu", "tanh"):
        sys.exit(f"{script}: '{formula}' is not a named activation of transformers_ref; export it with "
                 f"`actsearch export '{formula}' --to pytorch --layout features --out act.py` and pass --act-module act.py")
    return tr.named(name)
