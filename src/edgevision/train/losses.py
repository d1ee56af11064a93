"""Classification and knowledge-distillation losses."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_target_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with a probability target (mixup/cutmix/label smoothing)."""
    return torch.sum(-target * F.log_softmax(logits, dim=-1), dim=-1).mean()


def kd_soft(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """Hinton et al.: KL(softmax(teacher/T) || softmax(student/T)) * T^2, batch mean."""
    t = temperature
    return F.kl_div(F.log_softmax(student / t, dim=-1), F.log_softmax(teacher / t, dim=-1),
                    reduction="batchmean", log_target=True) * (t * t)


def kd_hard(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """DeiT hard distillation: cross-entropy against the teacher's argmax."""
    return F.cross_entropy(student, teacher.argmax(dim=-1))


def distillation_loss(outputs, target: torch.Tensor, teacher_logits: torch.Tensor | None, mode: str,
                      alpha: float, temperature: float) -> torch.Tensor:
    """``(1 - alpha) * label loss + alpha * distillation loss``.

    ``outputs`` is the logits, or ``(class_logits, dist_logits)`` for a model with a distillation
    head: the class head learns the labels and the distillation head the teacher (DeiT).
    ``target`` is a probability distribution (N, C).
    """
    if isinstance(outputs, (tuple, list)):
        cls_out, dist_out = outputs
    else:
        cls_out = dist_out = outputs
    base = soft_target_ce(cls_out, target)
    if teacher_logits is None:
        if dist_out is not cls_out:  # no teacher: both heads learn the labels
            return 0.5 * (base + soft_target_ce(dist_out, target))
        return base
    kd = kd_hard(dist_out, teacher_logits) if mode == "hard" else kd_soft(dist_out, teacher_logits, temperature)
    return (1 - alpha) * base + alpha * kd
