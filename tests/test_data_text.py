"""Chinese text tools: normalisation, medical tokenisation, and the report parser on hand-written reports."""

from __future__ import annotations

import pytest

from data_zh.text import (
    MedicalTokenizer,
    char_tokens,
    medical_tokenizer,
    normalize_zh,
    parse_report,
    split_sentences,
    tokenize_zh,
)
from ultra.eval.tokenize import tokenize_answer


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ＢＩ－ＲＡＤＳ　４ａ类", "BI-RADS 4a类"),
        ("边界清晰,形态规则.", "边界清晰，形态规则。"),
        ("大小约1.5cm×1.0cm", "大小约1.5cm×1.0cm"),
        ("是否可见病灶?", "是否可见病灶？"),
        ("甲状腺  结节 (左叶)", "甲状腺结节（左叶）"),
        ("  低回声\u200b结节\n\n\n无回声 ", "低回声结节\n无回声"),
        ("Is there a lesion? Yes, 2 cm.", "Is there a lesion? Yes, 2 cm."),
    ],
)
def test_normalize_zh(raw, expected):
    assert normalize_zh(raw) == expected


def test_traditional_to_simplified_only_on_request():
    assert normalize_zh("乳腺超聲檢查") == "乳腺超聲檢查"
    assert normalize_zh("乳腺超聲檢查", simplified=True) == "乳腺超声检查"


def test_jieba_keeps_medical_terms_whole():
    words = tokenize_zh(
        "右乳见一低回声结节，边界清晰，后方回声增强，BI-RADS 4a类；甲状腺TI-RADS 3类，无回声区", "jieba"
    )
    for term in ("低回声", "边界清晰", "后方回声增强", "BI-RADS", "TI-RADS", "无回声"):
        assert term in words, (term, words)
    assert " " not in words


def test_tokenizer_is_loaded_once_per_object_without_global_state(tmp_path):
    assert medical_tokenizer() is medical_tokenizer()
    extra = tmp_path / "extra.txt"
    extra.write_text("乳腺小叶增生 3000 n\n", encoding="utf-8")
    custom = MedicalTokenizer(user_dicts=(extra,))
    assert "乳腺小叶增生" in custom.cut("考虑乳腺小叶增生")
    assert "乳腺小叶增生" not in medical_tokenizer().cut("考虑乳腺小叶增生")
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        MedicalTokenizer(user_dicts=(tmp_path / "missing.txt",))


def test_char_mode_keeps_numbers_and_latin_words():
    """The scorer's rule: folded text, one token per ideograph, Latin/digit runs whole, punctuation
    and case folded away (so "BI-RADS" and "bi rads" score alike)."""
    assert tokenize_zh("结节1.5cm，BI-RADS 3类") == ["结", "节", "1", "5cm", "bi", "rads", "3", "类"]
    assert char_tokens("ＣＴ示T2高信号。") == ["ct", "示", "t2", "高", "信", "号"]
    assert char_tokens("结节1.5cm") == tokenize_answer("结节1.5cm", "zh")
    with pytest.raises(ValueError, match="unknown tokenisation mode"):
        tokenize_zh("x", mode="bpe")


def test_full_report():
    report = parse_report(
        "检查部位：双侧乳腺\n超声所见：\n右乳外上象限见一低回声结节，大小约1.5cm×1.0cm，边界清晰。CDFI：未见明显血流信号。\n"
        "左乳未见明显异常。\n超声提示：\n1、右乳低回声结节，BI-RADS 3类；\n2、左乳未见明显异常。"
    )
    assert report.order == ("site", "findings", "impression")
    assert report.site.text == "双侧乳腺"
    assert report.findings.sentences == (
        "右乳外上象限见一低回声结节，大小约1.5cm×1.0cm，边界清晰",
        "CDFI：未见明显血流信号",
        "左乳未见明显异常",
    )
    assert report.impression.sentences == ("右乳低回声结节，BI-RADS 3类", "左乳未见明显异常")


def test_reordered_bracketed_report_without_site():
    report = parse_report(
        "【诊断意见】甲状腺右叶结节，TI-RADS 4a类。\n【超声所见】甲状腺右叶见一低回声结节,边界欠清."
    )
    assert report.order == ("impression", "findings")
    assert report.site is None
    assert report.impression.header == "诊断意见"
    assert report.findings.sentences == ("甲状腺右叶见一低回声结节，边界欠清",)


def test_header_words_inside_sentences_are_not_headers():
    report = parse_report("超声所见:肝脏大小正常,提示无异常.诊断:脂肪肝")
    assert report.findings.text == "肝脏大小正常，提示无异常。"
    assert report.impression.text == "脂肪肝"


def test_report_without_headers_and_repeated_headers():
    plain = parse_report("肝脏大小形态正常。胆囊未见异常。")
    assert plain.sections == {} and plain.unlabelled == "肝脏大小形态正常。胆囊未见异常。"
    repeated = parse_report("超声提示：右肾结石。\n超声所见：右肾见强回声。\n超声提示：左肾未见异常。")
    assert repeated.impression.sentences == ("右肾结石", "左肾未见异常")


def test_split_sentences_removes_numbering_but_keeps_decimals():
    assert split_sentences("1.肝囊肿；2、胆囊息肉 0.5cm。三、脾大") == ["肝囊肿", "胆囊息肉 0.5cm", "脾大"]
