"""``ReportScreener``: one report and its images in; per image a score, a weight and a verdict out."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from fusion import VisionFusion
from screening.backbone import pooled_features
from screening.duplicates import DuplicateConfig, duplicate_groups
from screening.images import ImageInput, as_rgb_image, content_digest
from screening.informative import InformativeConfig, is_uninformative
from screening.io import check_backbone, load_student
from screening.selection import SelectionConfig, select, softmax_weights
from screening.student import ScreeningStudent

LOW_WEIGHT = "low_weight"
UNINFORMATIVE = "uninformative"
DUPLICATE_OF = "duplicate_of:{index}"


class ScreenerConfig(BaseModel):
    """How scores become weights and verdicts; every part has its own config."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(1.0, gt=0, description="softmax temperature over one report's images")
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    duplicates: DuplicateConfig = Field(default_factory=DuplicateConfig)
    informative: InformativeConfig = Field(default_factory=InformativeConfig)
    batch_size: int = Field(16, ge=1)


@dataclass(frozen=True)
class ImageVerdict:
    """One image of a report. ``group`` numbers near-duplicate groups by their best score (0 =
    best), so it does not depend on the order the images came in; ``reason`` is None when kept,
    else ``low_weight``, ``duplicate_of:<k>`` (k = input index of the copy that is kept) or
    ``uninformative``."""

    index: int
    score: float
    weight: float
    keep: bool
    group: int
    reason: str | None


@dataclass(frozen=True)
class ScreeningResult:
    report: str
    images: list[ImageVerdict]

    @property
    def kept(self) -> list[int]:
        return [verdict.index for verdict in self.images if verdict.keep]

    def as_dict(self, names: Sequence[str] | None = None) -> dict:
        """The CLI's JSON shape; ``names`` (e.g. the paths as given) replace the indices."""
        if names is not None and len(names) != len(self.images):
            raise ValueError(f"{len(names)} names for {len(self.images)} images")
        images = []
        for verdict in self.images:
            row = asdict(verdict)
            row["image"] = names[verdict.index] if names is not None else row.pop("index")
            row.pop("index", None)
            images.append({key: row[key] for key in ("image", "score", "weight", "keep", "group", "reason")})
        return {"report": self.report, "images": images}


def _representative(members: list[int], scores: list[float], areas: list[int], digests: list[str]) -> int:
    """Best score, then the larger picture, then content; position only breaks exact copies' ties."""
    return min(members, key=lambda i: (-scores[i], -areas[i], digests[i], i))


class ReportScreener:
    """Scores a report's images with the student over the shared fusion backbone, then weighs,
    groups near-duplicates, flags blank frames and selects; invariant to the order of the images."""

    def __init__(
        self, fusion: VisionFusion, student: ScreeningStudent, config: ScreenerConfig | None = None
    ) -> None:
        check_backbone(student, fusion)
        self.fusion = fusion
        self.student = student.eval()
        self.config = config or ScreenerConfig()

    @classmethod
    def from_folder(
        cls, directory: str | Path, fusion: VisionFusion, config: ScreenerConfig | None = None
    ) -> ReportScreener:
        return cls(fusion, load_student(directory), config)

    def scores(self, report: str, images: Sequence[ImageInput]) -> torch.Tensor:
        """The student's relevance score of each image, ``[N]`` float32."""
        return self._scores(report, [as_rgb_image(image, index) for index, image in enumerate(images)])

    def _scores(self, report: str, pictures: list[Image.Image]) -> torch.Tensor:
        features = pooled_features(self.fusion, pictures, self.config.batch_size)
        with torch.no_grad():
            return self.student.scores(features, report).float().cpu()

    def screen(self, report: str, images: Sequence[ImageInput]) -> ScreeningResult:
        if not images:
            raise ValueError("screen: a report needs at least one image")
        pictures = [as_rgb_image(image, index) for index, image in enumerate(images)]
        scores = self._scores(report, pictures).tolist()
        weights = softmax_weights(scores, self.config.temperature)
        blank = [is_uninformative(picture, self.config.informative) for picture in pictures]
        digests = [content_digest(picture) for picture in pictures]
        areas = [picture.width * picture.height for picture in pictures]
        groups = duplicate_groups(pictures, self.config.duplicates)
        representative = {}
        for members in groups:
            informative = [i for i in members if not blank[i]] or members
            best = _representative(informative, scores, areas, digests)
            representative.update(dict.fromkeys(members, best))
        ranked = sorted(
            {representative[i] for i in range(len(pictures))}, key=lambda r: (-scores[r], digests[r])
        )
        group_of = {i: ranked.index(representative[i]) for i in range(len(pictures))}
        candidates = [r for r in ranked if not blank[r]]
        kept = select(weights, candidates, self.config.selection, digests)
        verdicts = []
        for i in range(len(pictures)):
            if i in kept:
                reason = None
            elif blank[i]:
                reason = UNINFORMATIVE
            elif representative[i] != i:
                reason = DUPLICATE_OF.format(index=representative[i])
            else:
                reason = LOW_WEIGHT
            verdicts.append(ImageVerdict(i, scores[i], weights[i], i in kept, group_of[i], reason))
        return ScreeningResult(report, verdicts)
