"""Probabilities for closed answers: a softmax over each candidate's summed log-likelihood.

A closed question (是/否, 良性/恶性/未见明确病灶, a BI-RADS category) has a known answer set, so
instead of reading one generated string the model's own likelihood of every candidate is turned
into a distribution: ``p_i = exp(l_i / T) / sum_j exp(l_j / T)`` with ``l_i`` the summed
log-probability of candidate ``i``'s tokens given the request. The sum, not the per-token mean,
is used: it is ``log p(candidate | request)``, the quantity the softmax renormalises over the set.
``T`` (default 1) is the calibration temperature, fitted on held-out answers
(``ultra.eval.calibration.fit_temperature``), never on the split being reported.
Plain Python (no torch), so servers and scorers can use it without a model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MAX_CANDIDATES = 16


class CandidateError(ValueError):
    """A candidate list that cannot be scored (empty, too long, blank or repeated entries)."""


def check_candidates(candidates: Sequence[str], limit: int = MAX_CANDIDATES) -> tuple[str, ...]:
    """The candidates as a tuple; ``CandidateError`` naming the position (never the text) otherwise."""
    if isinstance(candidates, str):
        raise CandidateError("candidates must be a list of strings, not one string")
    items = tuple(candidates)
    if not items:
        raise CandidateError("at least one candidate answer is needed")
    if len(items) > limit:
        raise CandidateError(f"at most {limit} candidate answers may be given, got {len(items)}")
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            raise CandidateError(f"candidate {index} must be a non-empty string")
        if item in seen:
            raise CandidateError(f"candidate {index} repeats candidate {seen[item]}")
        seen[item] = index
    return items


def check_temperature(temperature: float) -> float:
    if not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature}")
    return float(temperature)


def softmax(values: Sequence[float], temperature: float = 1.0) -> list[float]:
    """``exp(v / T)`` normalised, shifted by the maximum so no term overflows."""
    temperature = check_temperature(temperature)
    if not values:
        return []
    scaled = [value / temperature for value in values]
    top = max(scaled)
    weights = [math.exp(value - top) for value in scaled]
    total = math.fsum(weights)
    return [weight / total for weight in weights]


@dataclass(frozen=True)
class Choice:
    """The candidates of one closed question with their summed log-likelihoods (``logprobs``),
    token counts and softmax probabilities at ``temperature``."""

    candidates: tuple[str, ...]
    log_likelihoods: tuple[float, ...]
    tokens: tuple[int, ...]
    probabilities: tuple[float, ...]
    temperature: float = 1.0

    @property
    def index(self) -> int:
        """Position of the most probable candidate (the first of equals)."""
        return max(range(len(self.probabilities)), key=lambda i: (self.probabilities[i], -i))

    @property
    def best(self) -> str:
        """The most probable candidate: the operating point (argmax)."""
        return self.candidates[self.index]

    def probability(self, candidate: str) -> float:
        return self.probabilities[self.candidates.index(candidate)]

    def as_dicts(self) -> list[dict[str, float | str]]:
        """``[{text, logprob, probability}]``: the API's ``candidates`` field."""
        return [
            {"text": text, "logprob": logprob, "probability": probability}
            for text, logprob, probability in zip(
                self.candidates, self.log_likelihoods, self.probabilities, strict=True
            )
        ]
