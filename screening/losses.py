"""Per-report losses over image scores: supervised relevance, and distillation from a teacher."""

from __future__ import annotations

import torch


def relevance_loss(scores: torch.Tensor, relevant: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Cross-entropy of ``softmax(scores / T)`` against a uniform target over the relevant images.

    Listwise, like the weights the screener reports: the relevant images must take the report's
    mass from the others, not merely score high in absolute terms.
    """
    if not bool(relevant.any()):
        raise ValueError("relevance_loss: a report needs at least one relevant image")
    target = relevant.float() / relevant.float().sum()
    return -(target * torch.log_softmax(scores / temperature, dim=-1)).sum()


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))`` over one report's images (Hinton's
    scaling keeps gradients comparable across temperatures); zero when the two agree."""
    log_p_teacher = torch.log_softmax(teacher.detach() / temperature, dim=-1)
    log_p_student = torch.log_softmax(student / temperature, dim=-1)
    return temperature**2 * (log_p_teacher.exp() * (log_p_teacher - log_p_student)).sum()
