"""Evidence for an answer: occlusion sensitivity of the answer's log-likelihood over an image.

Each cell of a grid over the image is replaced by the blank colour (zeros after normalisation,
the definition ``ultra.blank_like`` uses) and the drop in log p(answer | images, question) is
recorded. Large drops mark the regions the answer depends on; a map that is flat everywhere
means the answer does not depend on this image at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from data_zh.fonts import cjk_rc_params
from ultra.model.processor import IGNORE_INDEX, UltraProcessor, user_message

logger = logging.getLogger(__name__)

METHOD = "occlusion sensitivity of the answer's log-likelihood"


@dataclass
class OcclusionMap:
    """``drops[i, j]``: log-likelihood lost when grid cell (i, j) of the image is blanked."""

    drops: np.ndarray
    base_log_likelihood: float
    image_index: int
    method: str = METHOD


def _answer_log_likelihood(model: torch.nn.Module, batch: dict) -> torch.Tensor:
    """Summed log-probability of the labelled (answer) tokens, one value per row."""
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        pixel_values=batch.get("pixel_values"),
    ).logits[:, :-1]
    targets = batch["labels"][:, 1:]
    mask = targets != IGNORE_INDEX
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    picked = log_probs.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(dim=1)


def _occluded(
    pixel_values: list[torch.Tensor], image_index: int, cell: tuple[int, int], grid: int
) -> list[torch.Tensor]:
    row, col = cell
    out = []
    for tensor in pixel_values:
        tensor = tensor.clone()
        height, width = tensor.shape[-2:]
        y0, y1 = row * height // grid, (row + 1) * height // grid
        x0, x1 = col * width // grid, (col + 1) * width // grid
        tensor[image_index, :, y0:y1, x0:x1] = 0.0
        out.append(tensor)
    return out


@torch.inference_mode()
def occlusion_map(
    model: torch.nn.Module,
    processor: UltraProcessor,
    images: Sequence[Image.Image],
    question: str,
    answer: str,
    image_index: int = 0,
    grid: int = 8,
    batch_size: int = 16,
) -> OcclusionMap:
    """Blank each of ``grid``×``grid`` cells of ``images[image_index]`` and measure the answer's loss."""
    if not 0 <= image_index < len(images):
        raise ValueError(f"image_index {image_index} is out of range for {len(images)} images")
    if not answer.strip():
        raise ValueError("occlusion needs a non-empty answer to score")
    device = next(model.parameters()).device
    messages = [user_message(question, len(images)), {"role": "assistant", "content": answer}]
    example = processor.encode_example(messages, images)
    pixel_values = [p.to(device) for p in example["pixel_values"]]
    ids = example["input_ids"].unsqueeze(0).to(device)
    labels = example["labels"].unsqueeze(0).to(device)
    mask = torch.ones_like(ids)
    base = float(
        _answer_log_likelihood(
            model, {"input_ids": ids, "attention_mask": mask, "labels": labels, "pixel_values": pixel_values}
        )[0]
    )
    cells = [(r, c) for r in range(grid) for c in range(grid)]
    drops = np.zeros((grid, grid), dtype=np.float32)
    for start in range(0, len(cells), batch_size):
        chunk = cells[start : start + batch_size]
        variants = [_occluded(pixel_values, image_index, cell, grid) for cell in chunk]
        stacked = [torch.cat([v[e] for v in variants], dim=0) for e in range(len(pixel_values))]
        n = len(chunk)
        batch = {
            "input_ids": ids.expand(n, -1),
            "attention_mask": mask.expand(n, -1),
            "labels": labels.expand(n, -1),
            "pixel_values": stacked,
        }
        scores = _answer_log_likelihood(model, batch).cpu().numpy()
        for (row, col), score in zip(chunk, scores, strict=True):
            drops[row, col] = base - float(score)
    return OcclusionMap(drops=drops, base_log_likelihood=base, image_index=image_index)


def save_heatmap(
    image: Image.Image, occlusion: OcclusionMap, path: str | Path, question: str = "", answer: str = ""
) -> Path:
    """The image with the occlusion map over it, as a PNG (title states the method)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context(cjk_rc_params()):
        figure, axis = plt.subplots(figsize=(6, 6.4))
        axis.imshow(image.convert("RGB"))
        heat = axis.imshow(
            occlusion.drops,
            cmap="inferno",
            alpha=0.5,
            extent=(0, image.width, image.height, 0),
            interpolation="bilinear",
        )
        figure.colorbar(heat, ax=axis, fraction=0.046, label="log-likelihood drop when blanked")
        axis.set_axis_off()
        title = f"问：{question}\n答：{answer}\n" if question or answer else ""
        axis.set_title(f"{title}{occlusion.method}（仅供研究，非临床诊断）", fontsize=9)
        figure.tight_layout()
        figure.savefig(path, dpi=120)
        plt.close(figure)
    return path
