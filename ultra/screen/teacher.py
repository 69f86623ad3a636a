"""The screening teacher: the full VLM scores each image by how much it raises the report's likelihood.

score_i = mean log p(report | image i) - mean log p(report | blank image), a pointwise mutual
information that cancels the language prior (how likely the sentence is whatever the image).
The teacher is slow (one LLM pass per image and question) and is used only to train the student.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image

from data_zh.builders.busi import IMPRESSION_QUESTIONS
from screening import as_rgb_image, softmax_weights
from ultra.answerer import Answerer, Request, blank_like

# Impression questions the embedded model was trained on, so "the report as its answer" is in its
# training distribution; the generic one, not the breast-specific ones.
TEACHER_QUESTIONS = (IMPRESSION_QUESTIONS[1],)


class ReportTeacher:
    """PMI scores of a report's images under a VLM, averaged over ``questions``."""

    def __init__(self, answerer: Answerer, questions: Sequence[str] = TEACHER_QUESTIONS, batch_size: int = 8):
        if not questions:
            raise ValueError("ReportTeacher needs at least one question")
        self.answerer = answerer
        self.questions = tuple(questions)
        self.batch_size = batch_size

    def scores(self, report: str, images: Sequence[Image.Image]) -> torch.Tensor:
        """``[N]`` float64: mean log-likelihood gain of the report from each image over a blank one.

        One blank per distinct image size (blank_like keeps the size), so preprocessing that depends
        on the size treats the blank as it treats the image.
        """
        pictures = [as_rgb_image(image, index) for index, image in enumerate(images)]
        fusion = self.answerer.model.vision_tower
        sizes = sorted({picture.size for picture in pictures})
        blanks = [blank_like(next(p for p in pictures if p.size == size), fusion) for size in sizes]
        inputs = [*pictures, *blanks]
        pairs = [
            (Request(question=question, images=[picture]), report)
            for question in self.questions
            for picture in inputs
        ]
        means = (
            torch.tensor(
                [item.mean for item in self.answerer.log_likelihoods(pairs, batch_size=self.batch_size)],
                dtype=torch.float64,
            )
            .view(len(self.questions), len(inputs))
            .mean(dim=0)
        )
        baseline = {size: means[len(pictures) + k] for k, size in enumerate(sizes)}
        return torch.stack([means[i] - baseline[p.size] for i, p in enumerate(pictures)])

    def weights(self, report: str, images: Sequence[Image.Image], temperature: float = 1.0) -> list[float]:
        """Teacher weights: softmax of the scores over the report's images."""
        return softmax_weights(self.scores(report, images), temperature)
