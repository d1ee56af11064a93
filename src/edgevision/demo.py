"""`edgevision demo` / `make demo`: the model table and a latency table measured on this machine.

(Later issues grow this into the full train -> reparameterize -> export -> quantize pipeline.)
"""
from __future__ import annotations

import torch
from tqdm import tqdm

from .bench import cpu_description, measure_latency
from .errors import ConfigError
from .factory import count_params, create_model
from .registry import get_entry, list_families, list_models


def run_demo(args) -> int:
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    for n in names:
        get_entry(n)  # unknown names fail before any work
    if args.threads < 0:
        raise ConfigError("--threads must be >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    fams = list_families()
    print(f"edgevision: {len(list_models())} models in {len(fams)} families: {', '.join(fams)}\n")
    from .cli import cmd_models
    import argparse
    cmd_models(argparse.Namespace(pattern=None, family=None))
    print(f"\nLatency on this machine, batch 1, fp32 eager PyTorch, eval, default resolution\n"
          f"CPU: {cpu_description()}\n")
    rows = []
    for n in tqdm(names, desc="timing", unit="model", leave=False):
        model = create_model(n).eval()
        res = model.input_config.resolution
        x = torch.randn(1, 3, res, res)
        with torch.inference_mode():
            r = measure_latency(lambda: model(x), warmup=3, min_runs=10, min_time_s=0.5, max_time_s=5)
        ref = get_entry(n).reference
        rows.append([n, str(res), f"{count_params(model) / 1e6:.2f}M",
                     f"{ref.macs_millions:.0f}M" if ref else "-", f"{r.median_ms:.2f}",
                     f"±{r.spread * 50:.0f}%",
                     f"{ref.top1:.1f}" if ref and ref.top1 else "-"])
    from .cli import _table
    print(_table(rows, ["model", "res", "params", "MACs", "ms (median)", "spread", "top-1"],
                 right={1, 2, 3, 4, 5, 6}))
    return 0
