"""Weight averaging of a stage (``ema_decay``): an exponential moving average of the weights and
batch-norm statistics that the stage ends with.

A few hundred steps on a few hundred images leave the weights wherever the last batches pushed
them; the average over the last ~1 / (1 - decay) steps depends less on them and on the seed.
The average is ``torch.optim.swa_utils.AveragedModel`` (a copy of the module), checkpointed with
the run so a resumed stage ends with the same weights.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn


def weight_average(module: nn.Module, decay: float, device: torch.device | None = None) -> AveragedModel:
    """An EMA of ``module``'s parameters and buffers (kept on ``device``, where training runs);
    the first update copies them."""
    return AveragedModel(module, device=device, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


@torch.no_grad()
def load_average_into(average: AveragedModel, module: nn.Module) -> None:
    """Overwrite ``module``'s parameters and floating-point buffers with the average (integer
    buffers such as batch counters keep their own values: an average of counts means nothing)."""
    if int(average.n_averaged) == 0:
        raise ValueError("the weight average has seen no step; nothing to load")
    pairs = zip(
        [*average.module.parameters(), *average.module.buffers()],
        [*module.parameters(), *module.buffers()],
        strict=True,
    )
    for averaged, own in pairs:
        if own.is_floating_point():
            own.copy_(averaged.to(own.device))
