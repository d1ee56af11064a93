"""Typed training options (no string mini-languages). Each field that has a "help" line is also a
command-line option of ``edgevision train`` (edgevision/options.py)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import ConfigError
from ..options import ResolutionAction, bounds_problem, option

_PAIR = {"metavar": ("START", "END")}


@dataclass(frozen=True)
class ProgressiveConfig:
    """EfficientNetV2 progressive learning: ``stages`` equal parts of training in which image size
    and regularization grow together, linearly from the start to the end value."""

    stages: int = option(4, "number of stages the epochs are split into", min=1)
    size: tuple[int, int] = option((64, 96), "image size of the first and the last stage", min=8, **_PAIR)
    dropout: tuple[float, float] = option((0.0, 0.2), "classifier dropout of the first and the last "
                                          "stage", **_PAIR)
    randaug: tuple[int, int] = option((0, 9), "RandAugment magnitude of the first and the last stage "
                                      "(0: off)", **_PAIR)
    mixup: tuple[float, float] = option((0.0, 0.0), "mixup alpha of the first and the last stage "
                                        "(0: off)", **_PAIR)

    def __post_init__(self):
        problem = bounds_problem(self, "prog")
        if problem:
            raise ConfigError(problem)

    def stage_values(self, i: int) -> dict:
        t = 0.0 if self.stages <= 1 else i / (self.stages - 1)
        lerp = lambda pair: pair[0] + (pair[1] - pair[0]) * t  # noqa: E731
        size = int(round(lerp(self.size) / 8) * 8)  # multiple of 8
        return dict(size=size, dropout=round(lerp(self.dropout), 4),
                    randaug=int(round(lerp(self.randaug))), mixup=round(lerp(self.mixup), 4))


@dataclass(frozen=True)
class TrainConfig:
    model: str = option(help="registered model name (`edgevision models` lists them)",
                        flag=("-m", "--model"))
    out: str = option(help="run directory (checkpoints, metrics.jsonl, curves.png)",
                      flag=("-o", "--output", "--out"), metavar="DIR")
    data: str = option("embedded", "'embedded' or a folder with train/ and val/")
    epochs: int = option(10, "training epochs", min=1)
    batch_size: int = option(64, "images per step (per process with torchrun)",
                             flag=("-b", "--batch-size"), min=1)
    lr: float = option(2e-3, "peak learning rate (after warm-up)", above=0)
    min_lr: float = option(1e-5, "learning rate at the end of the cosine schedule", min=0)
    warmup_epochs: float = option(1.0, "epochs of linear learning-rate warm-up", min=0)
    optimizer: str = option("adamw", "adamw, or sgd (momentum 0.9, nesterov)", flag="--opt",
                            choices=("adamw", "sgd"))
    weight_decay: float = option(0.05, "weight decay (not on norm, bias, GRN, layer-scale and "
                                 "attention-bias parameters)", min=0)
    label_smoothing: float = option(0.1, "label smoothing of the cross-entropy targets", min=0)
    resolution: int | None = option(None, "train/eval size H [W] (square: one number; default: 96 "
                                    "for embedded, the model's otherwise)", action=ResolutionAction)
    train_size: int = option(6000, "embedded: images per epoch", min=1)
    val_size: int = option(1200, "embedded: validation images", min=1)
    num_classes: int | None = None  # default: the dataset's
    drop_path_rate: float = option(0.0, "stochastic depth rate", flag="--drop-path", min=0)
    drop_rate: float | None = option(None, "classifier dropout (default: the model's)", flag="--drop",
                                     min=0)
    ema_decay: float = option(0.0, "EMA decay, e.g. 0.999 (0: off)", flag="--ema", min=0)
    mixup: float = option(0.0, "mixup alpha (0: off)", min=0)
    cutmix: float = option(0.0, "cutmix alpha (0: off)", min=0)
    randaug: int = option(0, "RandAugment magnitude (0: off)", min=0)
    crop_scale: float = option(0.8, "smallest area kept by random-resized crops (0.8 keeps "
                               "embedded objects whole; ImageNet-like data: 0.08-0.35)", above=0)
    zero_init: bool = option(True, "keep the default init of the classifier and residual branches "
                             "(the ConvNeXt recipe in docs/training.md); by default a model trained "
                             "from scratch starts with them zeroed", flag="--no-zero-init")
    grad_clip: float = option(0.0, "max gradient norm (0: off)", min=0)
    channels_last: bool = option(True, "train in the contiguous (NCHW) memory format",
                                 flag="--no-channels-last")
    device: str = option("auto", "auto (the GPU if torch sees one, else the CPU), cpu, cuda or cuda:N")
    amp: bool = option(False, "mixed precision: bf16 autocast on CPU and on GPUs that support it, "
                       "else fp16 autocast with gradient scaling")
    bf16: bool = option(False, "bf16 autocast (on any device)")
    compile: bool = option(False, "torch.compile the model")
    workers: int = option(2, "data-loader worker processes", flag=("-j", "--workers"), min=0)
    seed: int = option(0, "seed of weights, data order and augmentation")
    weights: str | None = option(None, "initial weights for fine-tuning (the head is re-initialised "
                                 "if its size differs)")
    pretrained: bool | str = option(False, "start from the model's published weights (a TAG picks "
                                    "one; `edgevision models --pretrained` lists them); the classifier "
                                    "is replaced for the data's classes", type=str, nargs="?",
                                    const=True, metavar="TAG")
    freeze_epochs: int = option(0, "fine-tuning: train only the new classifier for the first N "
                                "epochs (backbone weights and BatchNorm statistics fixed)", min=0)
    resume: bool | str = option(False, "continue from a checkpoint: OUT/last.pt, or the PATH given",
                                type=str, nargs="?", const=True, metavar="PATH")
    stop_after_epochs: int | None = option(None, "end this process after N epochs (tests, time "
                                           "budgets)", hidden=True, min=1)
    # knowledge distillation
    teacher: str | None = option(None, "teacher model for knowledge distillation")
    teacher_weights: str | None = option(None, "weights of the teacher")
    distill: str = option("soft", "soft (KL at --temperature) or hard (teacher argmax labels)",
                          choices=("soft", "hard"))
    alpha: float = option(0.5, "weight of the distillation loss", min=0)
    temperature: float = option(4.0, "softmax temperature of soft distillation", above=0)
    progressive: ProgressiveConfig | None = option(None, "EfficientNetV2 progressive learning",
                                                   prefix="prog")
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "resolution", square_size(self.resolution, "training"))
        problem = bounds_problem(self)
        if problem:
            raise ConfigError(problem)

    def to_dict(self) -> dict:
        return asdict(self)


def square_size(resolution, what: str) -> int | None:
    """One side from ``--resolution H [W]`` (an int, or a 1- or 2-sequence) where only square
    images are supported; ConfigError for H != W."""
    if resolution is None or isinstance(resolution, int):
        return resolution
    sides = tuple(resolution)
    if len(sides) not in (1, 2) or len(set(sides)) != 1:
        raise ConfigError(f"{what} uses square images: give --resolution one number (got "
                          f"{' '.join(map(str, sides))})")
    return int(sides[0])
