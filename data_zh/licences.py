"""Which record licences forbid commercial use or require a citation, and which sources a set of
records came from.

Records carry their licence as text (``Record.licence``); a model whose weights ship with the
package may only learn from records whose licence allows redistribution for any use, and its card
must cite every source whose licence asks for it. The markers below are the phrasings the
converters write (Cholec80's CC BY-NC-SA, PromptCBLUE's 仅供学术研究, BUS-BRA's citation required).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

from data_zh.schema import Record

_NON_COMMERCIAL = re.compile(
    r"non[- ]?commercial|no commercial use|\bBY-NC\b|\bNC-SA\b|\bNC-ND\b|academic research only|"
    r"research use only|仅供学术研究|禁止商用|严禁用于商业",
    re.IGNORECASE,
)


_CITATION_REQUIRED = re.compile(r"citation required|required to cite|须引用", re.IGNORECASE)


def is_non_commercial(licence: str) -> bool:
    """True when a licence text says the data may not be used commercially."""
    return bool(_NON_COMMERCIAL.search(licence))


def requires_citation(licence: str) -> bool:
    """True when a licence text makes citing the dataset's article a condition of use."""
    return bool(_CITATION_REQUIRED.search(licence))


def source_licences(records: Iterable[Record]) -> list[dict[str, object]]:
    """One row per (source, licence): how many records, whether the licence is non-commercial, and
    whether it requires the dataset's article to be cited."""
    counts = Counter((record.source, record.licence) for record in records)
    return [
        {
            "source": source,
            "licence": licence,
            "records": count,
            "non_commercial": is_non_commercial(licence),
            "citation_required": requires_citation(licence),
        }
        for (source, licence), count in sorted(counts.items())
    ]
