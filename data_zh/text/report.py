"""Parser for the common layout of Chinese ultrasound reports: 检查部位 / 超声所见 / 超声提示 (诊断意见).

Real reports drop, reorder, bracket or repeat these headers; the parser tolerates all of it and
returns whatever sections it finds, each with its sentences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from data_zh.text.normalize import normalize_zh

# Canonical section -> headers as written in reports (longest first where one contains another).
SECTION_HEADERS: dict[str, tuple[str, ...]] = {
    "site": ("检查部位", "检查项目", "部位"),
    "findings": ("超声所见", "检查所见", "超声描述", "超声表现", "所见"),
    "impression": ("超声提示", "诊断意见", "超声诊断", "超声印象", "诊断", "印象", "结论", "提示"),
}
_HEADER_TO_SECTION = {header: name for name, headers in SECTION_HEADERS.items() for header in headers}
_HEADER_ALTERNATIVES = "|".join(sorted(map(re.escape, _HEADER_TO_SECTION), key=len, reverse=True))
# A header starts a line (or follows a sentence end) and is bracketed (【超声所见】) or ends in a colon
# or a line break, so the same words inside a sentence are never taken for a header.
_HEADER_RE = re.compile(
    r"(?:^|(?<=[\n。；;]))[ \t]*(?:"
    rf"[【\[［][ \t]*(?P<bracketed>{_HEADER_ALTERNATIVES})[ \t]*[】\]］][ \t]*[:：]?"
    rf"|(?P<bare>{_HEADER_ALTERNATIVES})[ \t]*(?:[:：]|\n|$))",
    re.MULTILINE,
)
_SENTENCE_END = re.compile(r"[。；;！!？?\n]+")
_ITEM_NUMBER = re.compile(r"^\s*(?:\d{1,2}|[一二三四五六七八九十])\s*[、.．)）]\s*(?!\d)")


@dataclass(frozen=True)
class ReportSection:
    """One section: its canonical name, the header as written, its text and sentences."""

    name: str
    header: str
    text: str
    sentences: tuple[str, ...]


@dataclass(frozen=True)
class ParsedReport:
    """Sections found (missing ones are None) plus any text that had no header."""

    site: ReportSection | None = None
    findings: ReportSection | None = None
    impression: ReportSection | None = None
    unlabelled: str = ""
    order: tuple[str, ...] = field(default_factory=tuple)

    @property
    def sections(self) -> dict[str, ReportSection]:
        """Found sections by canonical name, in the order they appeared."""
        return {name: getattr(self, name) for name in self.order}


def split_sentences(text: str) -> list[str]:
    """Sentences split at 。；！？ and line breaks; list numbering ("1、", "2.") removed; 1.5cm kept."""
    sentences = []
    for piece in _SENTENCE_END.split(text):
        piece = _ITEM_NUMBER.sub("", piece).strip(" ，,、")
        if piece:
            sentences.append(piece)
    return sentences


def parse_report(text: str, normalize: bool = True) -> ParsedReport:
    """Sections of a Chinese ultrasound report; a repeated header's text is appended to the first."""
    if normalize:
        text = normalize_zh(text)
    matches = list(_HEADER_RE.finditer(text))
    unlabelled = text[: matches[0].start()].strip() if matches else text.strip()
    texts: dict[str, list[str]] = {}
    headers: dict[str, str] = {}
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        header = match.group("bracketed") or match.group("bare")
        name = _HEADER_TO_SECTION[header]
        headers.setdefault(name, header)
        texts.setdefault(name, []).append(text[match.end() : end].strip())
    sections = {}
    for name, parts in texts.items():
        body = "\n".join(part for part in parts if part)
        sections[name] = ReportSection(name, headers[name], body, tuple(split_sentences(body)))
    return ParsedReport(**sections, unlabelled=unlabelled, order=tuple(texts))
