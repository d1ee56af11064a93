"""Typed training options (no string mini-languages)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ProgressiveConfig:
    """EfficientNetV2 progressive learning: ``stages`` equal parts of training in which image size
    and regularization grow together, linearly from the start to the end value."""

    stages: int = 4  # number of stages the epochs are split into
    size_start: int = 64  # image size of the first stage
    size_end: int = 96  # image size of the last stage
    dropout_start: float = 0.0  # classifier dropout of the first stage
    dropout_end: float = 0.2  # ... of the last stage
    randaug_start: int = 0  # RandAugment magnitude of the first stage (0 = off)
    randaug_end: int = 9  # ... of the last stage
    mixup_start: float = 0.0  # mixup alpha of the first stage (0 = off)
    mixup_end: float = 0.0  # ... of the last stage

    def stage_values(self, i: int) -> dict:
        t = 0.0 if self.stages <= 1 else i / (self.stages - 1)
        lerp = lambda a, b: a + (b - a) * t  # noqa: E731
        size = int(round(lerp(self.size_start, self.size_end) / 8) * 8)  # multiple of 8
        return dict(size=size, dropout=round(lerp(self.dropout_start, self.dropout_end), 4),
                    randaug=int(round(lerp(self.randaug_start, self.randaug_end))),
                    mixup=round(lerp(self.mixup_start, self.mixup_end), 4))


@dataclass(frozen=True)
class TrainConfig:
    model: str  # registered model name
    out: str  # run directory (checkpoints, metrics.jsonl, curves.png)
    data: str = "embedded"  # "embedded" or an ImageFolder root with train/ and val/
    epochs: int = 10
    batch_size: int = 64
    lr: float = 2e-3  # peak learning rate (after warm-up)
    min_lr: float = 1e-5  # cosine floor
    warmup_epochs: float = 1.0
    optimizer: str = "adamw"  # "adamw" or "sgd" (momentum 0.9, nesterov)
    weight_decay: float = 0.05  # not applied to norm, bias, GRN, layer-scale, attention-bias params
    label_smoothing: float = 0.1
    resolution: int | None = None  # train/eval size (default: 96 for embedded, model's otherwise)
    train_size: int = 6000  # embedded: samples per training epoch
    val_size: int = 1200  # embedded: validation samples
    num_classes: int | None = None  # default: the dataset's
    drop_path_rate: float = 0.0
    drop_rate: float | None = None  # classifier dropout (default: the model's)
    ema_decay: float = 0.0  # EMA of weights (0 = off), e.g. 0.999
    mixup: float = 0.0  # mixup alpha (0 = off)
    cutmix: float = 0.0  # cutmix alpha (0 = off)
    randaug: int = 0  # RandAugment magnitude (0 = off)
    crop_scale: float = 0.8  # smallest area kept by the random-resized crop (embedded objects stay whole)
    zero_init: bool = True  # from scratch: zero the classifier and the last BN of residual branches
    grad_clip: float = 0.0  # max grad norm (0 = off)
    channels_last: bool = True
    bf16: bool = False  # bf16 autocast
    compile: bool = False  # torch.compile the model
    workers: int = 2  # data-loader worker processes
    seed: int = 0
    weights: str | None = None  # initial weights (fine-tuning); head re-initialised if it differs
    resume: bool = False  # continue from out/last.pt
    stop_after_epochs: int | None = None  # end this process after N epochs (tests, time budgets)
    # knowledge distillation
    teacher: str | None = None
    teacher_weights: str | None = None
    distill: str = "soft"  # "soft" (KL at temperature T) or "hard" (teacher argmax labels)
    alpha: float = 0.5  # weight of the distillation loss
    temperature: float = 4.0
    progressive: ProgressiveConfig | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)
