"""Where screening plugs into ultra's other surfaces: a question about a report's images
(``ultra ask --report``) and the studies of a DICOM batch (``ultra dicom --screen``).

Both drop the images the screener drops and answer on the kept ones; the weights are reported
(stderr / ``--json``, ``results.jsonl``) and, only when asked (``weigh=True``), also scale the kept
images' tokens through ``Request.image_weights``. Dropping is the default because it is what the
selection rule means (an image below ``beta/N`` carries nothing the report needs), and it also
removes the image tokens from the prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from PIL import Image

from screening import ReportScreener, ScreeningResult
from ultra.answerer.requests import Request
from ultra.dicom.studies import ImageSelector, Study, StudyImage


def screen_request(
    screener: ReportScreener,
    report: str,
    request: Request,
    weigh: bool = False,
    result: ScreeningResult | None = None,
) -> tuple[Request, ScreeningResult]:
    """The request on the images kept for ``report`` (with their renormalised weights when ``weigh``),
    and the screening result (``result``: one already computed for these images). A request with
    fewer than two images is returned unchanged and screened only for the record."""
    result = result if result is not None else screener.screen(report, request.images)
    if len(request.images) < 2:
        return request, result
    kept = result.kept
    weights = [result.images[i].weight for i in kept] if weigh else None
    return replace(request, images=[request.images[i] for i in kept], image_weights=weights), result


def study_selector(screener: ReportScreener, report: str) -> ImageSelector:
    """An ``ultra.dicom`` image selector: each study's images screened against ``report``; the kept
    ones come back with their screener weights renormalised over the kept set."""

    def select(study: Study, pictures: Sequence[Image.Image]) -> list[tuple[StudyImage, float]]:
        if not study.images:
            return []
        result = screener.screen(report, list(pictures))
        total = sum(result.images[i].weight for i in result.kept)
        return [(study.images[i], result.images[i].weight / total) for i in result.kept]

    return select

