"""Weight averaging of a stage (``ema_decay``): an exponential moving average of the weights and
batch-norm statistics that the stage ends with.

A few hundred steps on a few hundred images leave the weights wherever the last batches pushed
them; the average over the last ~1 / (1 - decay) steps depends less on them and on the seed.
Only what the stage changes is averaged — its trainable parameters and floating-point buffers,
by name — so a LoRA stage on a large frozen LLM does not hold a second copy of it
(``torch.optim.swa_utils.AveragedModel`` would copy the whole module). Same update as
``get_ema_multi_avg_fn``: the first step copies, later ones lerp towards the new weights.
"""

from __future__ import annotations

import logging
import math

import torch
from torch import nn

logger = logging.getLogger(__name__)

STEPS_KEY = "__steps__"


class WeightAverage:
    """The EMA of a module's trainable parameters and floating-point buffers, kept by name on
    the device of each (made before ``accelerate`` moves the module, so it follows it on the first
    update); ``state_dict`` / ``load_state_dict`` make a resumed stage exact."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0 < decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.steps = 0
        self.names = [name for name, tensor in _averaged(module)]
        self.tensors = {  # contiguous, so a checkpoint can save them (safetensors refuses views)
            name: tensor.detach().clone(memory_format=torch.contiguous_format)
            for name, tensor in _averaged(module)
        }

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Fold the module's current weights into the average (after an optimizer step)."""
        current = dict(_averaged(module))
        for name in self.names:
            if self.tensors[name].device != current[name].device:
                self.tensors[name] = self.tensors[name].to(current[name].device)
        averaged = [self.tensors[name] for name in self.names]
        latest = [current[name].detach() for name in self.names]
        if self.steps == 0:
            torch._foreach_copy_(averaged, latest)
        elif averaged:
            torch._foreach_lerp_(averaged, latest, 1 - self.decay)
        self.steps += 1

    @torch.no_grad()
    def load_into(self, module: nn.Module) -> None:
        """Overwrite the module's averaged tensors with the average (the stage's end)."""
        if self.steps == 0:
            raise ValueError("the weight average has seen no step; nothing to load")
        current = dict(_averaged(module))
        for name in self.names:
            current[name].copy_(self.tensors[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {
            **{name: tensor.cpu() for name, tensor in self.tensors.items()},
            STEPS_KEY: torch.tensor(self.steps),
        }

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        missing = sorted(set(self.names) - set(state))
        if missing or STEPS_KEY not in state:
            raise ValueError(f"the saved weight average lacks {missing[:3] or [STEPS_KEY]}")
        for name in self.names:
            self.tensors[name].copy_(state[name])
        self.steps = int(state[STEPS_KEY])


def _averaged(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """What a stage changes: trainable parameters and floating-point buffers (batch-norm
    statistics; integer counters keep their own values, an average of counts means nothing)."""
    parameters = [(name, p) for name, p in module.named_parameters() if p.requires_grad]
    buffers = [(name, b) for name, b in module.named_buffers() if b.is_floating_point()]
    return parameters + buffers


def warn_if_start_dominates(stage_name: str, decay: float, total_steps: int) -> None:
    """The starting weights keep ``decay ** (steps - 1)`` of the average: say so when that is
    more than 5% (a horizon too long for the stage, e.g. a ``--max-steps`` smoke run)."""
    share = math.pow(decay, max(total_steps - 1, 0))
    if share > 0.05:
        logger.warning(
            "stage %s: ema_decay %.4g averages over ~%d steps but the stage has %d; its starting "
            "weights keep %.0f%% of the average",
            stage_name,
            decay,
            round(1 / (1 - decay)),
            total_steps,
            100 * share,
        )
