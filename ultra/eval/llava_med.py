"""``--compat llava-med``: LLaVA-Med's ``llava/eval/run_eval.py`` scoring, reproduced.

Published VQA-RAD / SLAKE / PathVQA tables for LLaVA-Med and its followers were produced by that
script, so numbers only compare when scored the same way. Two versions of it differ in one rule,
so each is a named rule here:

- ``llava-med`` = tag v1.0.0 (commit b9a98a7, 2023-12-11, "fix closed accuracy calculation #35"):
  a closed prediction that contains "yes" or "no" but not the gold is a **miss**;
- ``llava-med-2023-08`` = the init release (commit ad758b6, 2023-08-24; unchanged in e9972cf):
  such a prediction is **skipped** (neither hit nor miss), so a wrong "no" lowers nothing.

Everything else is common to both (and reproduced here):

- gold and prediction are lower-cased and passed through its ``normalize_word`` (punctuation
  list folded to space or removed, periods not followed by a digit removed — at most 32 of them,
  because ``re.UNICODE`` lands in ``sub``'s *count* argument —, number words to digits with
  "none" -> "0", articles dropped, VQA contractions restored); the metric helpers normalise again.
- **closed** ("yes/no accuracy"): a hit needs the substring "yes" or "no" in the prediction *and*
  the gold as a substring of it; a prediction with neither substring is a miss. So "no" in
  "nodule" counts, a correct organ name without yes/no is a miss, and Chinese answers (是/否)
  are always misses.
- **open**: recall / precision / F1 over whitespace words where true positives count the
  prediction's repeats; "exact match" = distinct gold words found / prediction word count;
  BLEU = NLTK ``sentence_bleu`` (4-gram, uniform; and single-order weights for BLEU-1/2/3), no
  smoothing; "open accuracy" = the candidate answer most similar to the prediction equals the
  gold (needs the candidate list; the first best candidate wins ties).
- only ``answer_type`` exactly "OPEN" or "CLOSED" is scored; other values are ignored.

Where the default scorer differs: it maps answers to canonical labels (so 是/否 and "no, there is
not" score correctly and no question is skipped), tokenises Chinese by character, uses
effective-order BLEU and reports every question in the denominator.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from data_zh.io import jsonl_lines, parse_json_bytes

_PUNCTUATION = ';/[]"{}()=+\\_-><@`,?!'
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_DIGIT_COMMA = re.compile(r"(\d)(\,)(\d)")
_MAX_PERIODS = 32  # re.UNICODE (== 32) passed as ``count`` in the original
_ARTICLES = frozenset({"a", "an", "the"})

LlavaMedRule = Literal["llava-med", "llava-med-2023-08"]
LLAVA_MED_RULES: tuple[str, ...] = get_args(LlavaMedRule)
RULE_TITLES = {
    "llava-med": "LLaVA-Med v1.0.0 run_eval.py (b9a98a7)",
    "llava-med-2023-08": "LLaVA-Med 2023-08 run_eval.py (ad758b6, yes/no misses skipped)",
}


def _pairs(table: str) -> dict[str, str]:
    """'key=value key=value ...' -> dict (compact data tables)."""
    return dict(item.split("=", 1) for item in table.split())


_NUMBER_WORDS = _pairs("none=0 zero=0 one=1 two=2 three=3 four=4 five=5 six=6 seven=7 eight=8 nine=9 ten=10")
# The VQA evaluation's contraction table (keys reachable after lower-casing).
_CONTRACTIONS = _pairs(
    "aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn't've "
    "couldnt've=couldn't've didnt=didn't doesnt=doesn't dont=don't hadnt=hadn't hadnt've=hadn't've "
    "hadn'tve=hadn't've hasnt=hasn't havent=haven't hed=he'd hed've=he'd've he'dve=he'd've hes=he's "
    "howd=how'd howll=how'll hows=how's isnt=isn't itd=it'd itd've=it'd've it'dve=it'd've itll=it'll "
    "maam=ma'am mightnt=mightn't mightnt've=mightn't've mightn'tve=mightn't've mightve=might've "
    "mustnt=mustn't mustve=must've neednt=needn't notve=not've oclock=o'clock oughtnt=oughtn't "
    "ow's'at='ow's'at 'ows'at='ow's'at 'ow'sat='ow's'at shant=shan't shed've=she'd've "
    "she'dve=she'd've shouldve=should've shouldnt=shouldn't shouldnt've=shouldn't've "
    "shouldn'tve=shouldn't've somebody'd=somebodyd somebodyd've=somebody'd've "
    "somebody'dve=somebody'd've somebodyll=somebody'll somebodys=somebody's someoned=someone'd "
    "someoned've=someone'd've someone'dve=someone'd've someonell=someone'll someones=someone's "
    "somethingd=something'd somethingd've=something'd've something'dve=something'd've "
    "somethingll=something'll thats=that's thered=there'd thered've=there'd've there'dve=there'd've "
    "therere=there're theres=there's theyd=they'd theyd've=they'd've they'dve=they'd've "
    "theyll=they'll theyre=they're theyve=they've twas='twas wasnt=wasn't wed've=we'd've "
    "we'dve=we'd've weve=we've werent=weren't whatll=what'll whatre=what're whats=what's "
    "whatve=what've whens=when's whered=where'd wheres=where's whereve=where've whod=who'd "
    "whod've=who'd've who'dve=who'd've wholl=who'll whos=who's whove=who've whyll=why'll "
    "whyre=why're whys=why's wont=won't wouldve=would've wouldnt=wouldn't wouldnt've=wouldn't've "
    "wouldn'tve=wouldn't've yall=y'all yall'll=y'all'll y'allll=y'all'll yall'd've=y'all'd've "
    "y'alld've=y'all'd've y'all'dve=y'all'd've youd=you'd youd've=you'd've you'dve=you'd've "
    "youll=you'll youre=you're youve=you've"
)


def normalize_word(text: str) -> str:
    """LLaVA-Med's ``normalize_word`` (the VQA answer normaliser), quirks included."""
    drop_all = _DIGIT_COMMA.search(text) is not None
    folded = text
    for mark in _PUNCTUATION:
        if drop_all or mark + " " in text or " " + mark in text:
            folded = folded.replace(mark, "")
        else:
            folded = folded.replace(mark, " ")
    folded = _PERIOD.sub("", folded, count=_MAX_PERIODS)
    words = [_NUMBER_WORDS.get(word, word) for word in folded.lower().split()]
    words = [_CONTRACTIONS.get(word, word) for word in words if word not in _ARTICLES]
    return " ".join(words).replace(",", "")


def _unigrams(text: str) -> Counter:
    return Counter(text.lower().strip().split())


def exact_match(prediction: str, gold: str) -> float:
    """Distinct gold words found in the prediction / prediction word count (LLaVA-Med's "exact")."""
    predicted, reference = _unigrams(normalize_word(prediction)), _unigrams(normalize_word(gold))
    total = sum(predicted.values())
    return sum(1 for word in reference if word in predicted) / total if total else 0.0


def f1_precision_recall(prediction: str, gold: str) -> tuple[float, float, float]:
    """LLaVA-Med's F1: true positives count the prediction's repeats of gold words."""
    predicted, reference = _unigrams(normalize_word(prediction)), _unigrams(normalize_word(gold))
    if not predicted or not reference:
        return 0.0, 0.0, 0.0
    tp = sum(count for word, count in predicted.items() if word in reference)
    fp = sum(count for word, count in predicted.items() if word not in reference)
    fn = sum(count for word, count in reference.items() if word not in predicted)
    if tp == 0:
        return 0.0, 0.0, 0.0
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return 2 * precision * recall / (precision + recall), precision, recall


def prepare_candidates(candidates: Sequence[str | int]) -> list[tuple[str, Counter]]:
    """Normalised candidate answers with their word counts (computed once per scoring run)."""
    prepared = []
    for candidate in candidates:
        normalized = normalize_word(str(candidate))
        prepared.append((normalized, _unigrams(normalized)))
    return prepared


def open_accuracy(
    prediction: str, gold: str, candidates: Sequence[str | int] | list[tuple[str, Counter]]
) -> float:
    """1.0 when the candidate most similar to the prediction (first on ties) equals the gold."""
    if candidates and not isinstance(candidates[0], tuple):
        candidates = prepare_candidates(candidates)
    predicted = _unigrams(normalize_word(prediction))
    reference = normalize_word(gold)
    best, best_similarity = None, -1.0
    for normalized, words in candidates:
        similarity = sum(1 for word in predicted if word in words) / len(words) if words else 0.0
        if similarity > best_similarity:
            best, best_similarity = normalized, similarity
    return float(best == reference)


def _sentence_bleu(reference: list[str], hypothesis: list[str], weights: tuple[float, ...]) -> float:
    try:
        from nltk.translate.bleu_score import sentence_bleu
    except ImportError as error:
        raise ImportError("--compat llava-med needs nltk (pip install nltk), as LLaVA-Med did") from error
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(sentence_bleu([reference], hypothesis, weights=weights))


@dataclass(frozen=True)
class LlavaMedItem:
    """One scored question: its id, gold answer, model answer and raw answer type."""

    question_id: str
    gold: str
    prediction: str
    answer_type: str


def check_rule(rule: str) -> LlavaMedRule:
    """The rule name itself, or a ValueError that lists the known ones."""
    if rule not in LLAVA_MED_RULES:
        raise ValueError(f"unknown LLaVA-Med rule {rule!r}; known: {', '.join(LLAVA_MED_RULES)}")
    return rule  # type: ignore[return-value]


def score_llava_med(
    items: Sequence[LlavaMedItem],
    candidates: Sequence[str | int] | None = None,
    rule: LlavaMedRule = "llava-med",
) -> dict:
    """The numbers LLaVA-Med's ``run_eval.py`` prints (in percent) under ``rule``, plus the counts."""
    check_rule(rule)
    closed_hits: list[int] = []
    open_rows: list[dict[str, float]] = []
    prepared = prepare_candidates(candidates) if candidates is not None else None
    for item in items:
        gold = normalize_word(item.gold.lower())
        prediction = normalize_word(item.prediction.lower())
        if item.answer_type == "OPEN":
            f1, precision, recall = f1_precision_recall(prediction, gold)
            hypothesis, reference = prediction.lower().split(), gold.lower().split()
            row = {
                "exact_match": exact_match(prediction, gold),
                "f1": f1,
                "precision": precision,
                "recall": recall,
                "bleu": _sentence_bleu(reference, hypothesis, (0.25, 0.25, 0.25, 0.25)),
                "bleu_1": _sentence_bleu(reference, hypothesis, (1, 0, 0, 0)),
                "bleu_2": _sentence_bleu(reference, hypothesis, (0, 1, 0, 0)),
                "bleu_3": _sentence_bleu(reference, hypothesis, (0, 0, 1, 0)),
            }
            if prepared is not None:
                row["open_accuracy"] = open_accuracy(prediction, gold, prepared)
            open_rows.append(row)
        elif item.answer_type == "CLOSED":
            says_yes_or_no = "yes" in prediction or "no" in prediction
            hit = says_yes_or_no and gold in prediction
            skipped = rule == "llava-med-2023-08" and says_yes_or_no and not hit
            if not skipped:
                closed_hits.append(int(hit))
    names = ["exact_match", "f1", "precision", "recall", "bleu", "bleu_1", "bleu_2", "bleu_3"]
    if candidates is not None:
        names.append("open_accuracy")
    result: dict = {"rule": rule} | {
        name: 100 * sum(r[name] for r in open_rows) / len(open_rows) if open_rows else 0.0 for name in names
    }
    result["yes_no_accuracy"] = 100 * sum(closed_hits) / len(closed_hits) if closed_hits else 0.0
    result["n_open"] = len(open_rows)
    result["n_closed_counted"] = len(closed_hits)
    result["n_closed"] = sum(1 for item in items if item.answer_type == "CLOSED")
    return result


def _parsed(data: bytes, where: str) -> Any:
    try:
        return parse_json_bytes(data)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def read_llava_med_files(gt_path: str | Path, pred_path: str | Path) -> list[LlavaMedItem]:
    """LLaVA-Med's own inputs: a gt json (id, conversations, answer_type) and an answers jsonl.

    Like the original, the two files must list the same ids in the same order.
    """
    gt = _parsed(Path(gt_path).read_bytes(), str(gt_path))
    predictions = [_parsed(line, f"{pred_path}:{number}") for number, line in jsonl_lines(pred_path)]
    gt_ids = [str(item["id"]) for item in gt]
    pred_ids = [str(item["question_id"]) for item in predictions]
    if gt_ids != pred_ids:
        raise ValueError(f"{pred_path}: question ids do not match {gt_path} one for one, in order")
    items = []
    for gold, predicted in zip(gt, predictions, strict=True):
        turns = gold.get("conversations", gold.get("conversatons"))
        items.append(LlavaMedItem(str(gold["id"]), turns[1]["value"], predicted["text"], gold["answer_type"]))
    return items
