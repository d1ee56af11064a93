"""Training: embedded/folder data, the trainer, distillation, progressive learning, EMA,
atomic checkpoints and multi-process (torchrun) training."""
from .config import ProgressiveConfig, TrainConfig
from .loop import evaluate, train

__all__ = ["TrainConfig", "ProgressiveConfig", "train", "evaluate"]
