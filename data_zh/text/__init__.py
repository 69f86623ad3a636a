"""Chinese text tools: normalisation, tokenisation with a medical dictionary, report parsing."""

from data_zh.text.cjk import CJK_RANGES, has_cjk, is_cjk_char
from data_zh.text.normalize import ConverterUnavailableError, normalize_zh, to_simplified
from data_zh.text.report import SECTION_HEADERS, ParsedReport, ReportSection, parse_report, split_sentences
from data_zh.text.tokenize import (
    MEDICAL_DICT,
    MedicalTokenizer,
    char_tokens,
    fold_text,
    medical_tokenizer,
    tokenize_zh,
)

__all__ = [
    "CJK_RANGES",
    "MEDICAL_DICT",
    "SECTION_HEADERS",
    "ConverterUnavailableError",
    "MedicalTokenizer",
    "ParsedReport",
    "ReportSection",
    "char_tokens",
    "fold_text",
    "has_cjk",
    "is_cjk_char",
    "medical_tokenizer",
    "normalize_zh",
    "parse_report",
    "split_sentences",
    "to_simplified",
    "tokenize_zh",
]
