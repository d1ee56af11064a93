"""Typed training options (no string mini-languages). Each field that has a "help" line is also a
command-line option of ``edgevision train`` (edgevision/options.py)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..options import option

_PAIR = {"metavar": ("START", "END")}


@dataclass(frozen=True)
class ProgressiveConfig:
    """EfficientNetV2 progressive learning: ``stages`` equal parts of training in which image size
    and regularization grow together, linearly from the start to the end value."""

    stages: int = option(4, "number of stages the epochs are split into")
    size: tuple[int, int] = option((64, 96), "image size of the first and the last stage", **_PAIR)
    dropout: tuple[float, float] = option((0.0, 0.2), "classifier dropout of the first and the last "
                                          "stage", **_PAIR)
    randaug: tuple[int, int] = option((0, 9), "RandAugment magnitude of the first and the last stage "
                                      "(0: off)", **_PAIR)
    mixup: tuple[float, float] = option((0.0, 0.0), "mixup alpha of the first and the last stage "
                                        "(0: off)", **_PAIR)

    def stage_values(self, i: int) -> dict:
        t = 0.0 if self.stages <= 1 else i / (self.stages - 1)
        lerp = lambda pair: pair[0] + (pair[1] - pair[0]) * t  # noqa: E731
        size = int(round(lerp(self.size) / 8) * 8)  # multiple of 8
        return dict(size=size, dropout=round(lerp(self.dropout), 4),
                    randaug=int(round(lerp(self.randaug))), mixup=round(lerp(self.mixup), 4))


@dataclass(frozen=True)
class TrainConfig:
    model: str = option(help="registered model name (`edgevision models` lists them)")
    out: str = option(help="run directory (checkpoints, metrics.jsonl, curves.png)")
    data: str = option("embedded", "'embedded' or a folder with train/ and val/")
    epochs: int = option(10, "training epochs")
    batch_size: int = option(64, "images per step (per process with torchrun)")
    lr: float = option(2e-3, "peak learning rate (after warm-up)")
    min_lr: float = 1e-5  # cosine floor
    warmup_epochs: float = option(1.0, "epochs of linear learning-rate warm-up")
    optimizer: str = option("adamw", "adamw, or sgd (momentum 0.9, nesterov)", flag="--opt",
                            choices=("adamw", "sgd"))
    weight_decay: float = option(0.05, "weight decay (not on norm, bias, GRN, layer-scale and "
                                 "attention-bias parameters)")
    label_smoothing: float = option(0.1, "label smoothing of the cross-entropy targets")
    resolution: int | None = option(None, "train/eval size (default: 96 for embedded, the model's "
                                    "otherwise)")
    train_size: int = option(6000, "embedded: images per epoch")
    val_size: int = option(1200, "embedded: validation images")
    num_classes: int | None = None  # default: the dataset's
    drop_path_rate: float = option(0.0, "stochastic depth rate", flag="--drop-path")
    drop_rate: float | None = option(None, "classifier dropout (default: the model's)", flag="--drop")
    ema_decay: float = option(0.0, "EMA decay, e.g. 0.999 (0: off)", flag="--ema")
    mixup: float = option(0.0, "mixup alpha (0: off)")
    cutmix: float = option(0.0, "cutmix alpha (0: off)")
    randaug: int = option(0, "RandAugment magnitude (0: off)")
    crop_scale: float = option(0.8, "smallest area kept by random-resized crops (0.8 keeps "
                               "embedded objects whole; ImageNet-like data: 0.08-0.35)")
    zero_init: bool = option(True, "keep the default init of the classifier and residual branches "
                             "(the ConvNeXt recipe in docs/training.md); by default a model trained "
                             "from scratch starts with them zeroed", flag="--no-zero-init")
    grad_clip: float = option(0.0, "max gradient norm (0: off)")
    channels_last: bool = option(True, "train in the contiguous (NCHW) memory format",
                                 flag="--no-channels-last")
    bf16: bool = option(False, "bf16 autocast")
    compile: bool = option(False, "torch.compile the model")
    workers: int = option(2, "data-loader worker processes")
    seed: int = option(0, "seed of weights, data order and augmentation")
    weights: str | None = option(None, "initial weights for fine-tuning (the head is re-initialised "
                                 "if its size differs)")
    resume: bool = option(False, "continue from OUT/last.pt")
    stop_after_epochs: int | None = option(None, "end this process after N epochs (tests, time "
                                           "budgets)", hidden=True)
    # knowledge distillation
    teacher: str | None = option(None, "teacher model for knowledge distillation")
    teacher_weights: str | None = option(None, "weights of the teacher")
    distill: str = option("soft", "soft (KL at --temperature) or hard (teacher argmax labels)",
                          choices=("soft", "hard"))
    alpha: float = option(0.5, "weight of the distillation loss")
    temperature: float = option(4.0, "softmax temperature of soft distillation")
    progressive: ProgressiveConfig | None = option(None, "EfficientNetV2 progressive learning",
                                                   prefix="prog")
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)
