"""The student's image side reads the VLM's own fusion backbone: shared weights, never trained here."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from PIL import Image

from fusion import VisionFusion


@contextmanager
def _eval_mode(module: torch.nn.Module) -> Iterator[None]:
    """Eval for the duration (dropout off, BatchNorm statistics fixed), then the caller's mode back."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def pooled_features(fusion: VisionFusion, images: list[Image.Image], batch_size: int = 16) -> torch.Tensor:
    """``[N, hidden]`` float32 CPU: the fused grid tokens the LLM would see, averaged over tokens
    (a decision token, if the tower has one, is left out: the student learns from the image).

    Each image is encoded on its own row of a batch, so an image's features never depend on the
    other images of the report (the screener's order invariance rests on this).
    """
    if not images:
        return torch.zeros(0, fusion.hidden_size)
    chunks = []
    with _eval_mode(fusion), torch.no_grad():
        for start in range(0, len(images), batch_size):
            pixel_values = fusion.preprocess(images[start : start + batch_size])
            chunks.append(fusion(pixel_values, decision=False).float().mean(dim=1).cpu())
    return torch.cat(chunks)


def backbone_fingerprint(fusion: VisionFusion) -> str:
    """A short digest of the backbone's config and weights, saved with a student so it is never
    loaded over a backbone it was not trained on (its head would read meaningless features).
    Only what the student reads counts: the grid, not a decision head or its codes (so a tower
    with a decision token keeps the fingerprint of the same grid without one)."""
    digest = hashlib.sha256(fusion.config.model_dump_json(exclude={"decision_classes"}).encode())
    for name, tensor in sorted(fusion.state_dict().items()):
        if name.startswith("decision_"):
            continue
        digest.update(name.encode())
        digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
