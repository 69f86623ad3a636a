"""Screening benchmark: which image does a report describe, and does screening help the answer?

Reports come from ``data_zh.builders.report_benchmark``: the student trains on reports built from
TRAIN-split images only (BUSI train, DICOM train CT/MR, no laparoscopy frames), everything is scored
on the VALIDATION build (BUSI val, DICOM val, laparoscopy val frames). Two students are trained
here, with settings fixed before any validation number was seen (the recipe's defaults:
``LabelTrainingConfig()`` and ``configs/screening-tiny-zh.yaml``, seed 0, no tuning on val):

* labels-only: ``screening.train_on_labels`` (no teacher: the ablation that shows what KD adds);
* distilled: ``ultra screen train``'s library call (teacher = ``ultra-tiny-zh``, KD + labels).

Table 1 (relevance): top-1 hit rate and mean average precision, scored after grouping the
described image with its near-duplicates (a copy ranked first is a hit); again with every report
rewritten in a wording no student trained on (``UNSEEN_WORDINGS``); duplicate-group pair F1;
rejection rate of blank frames and of other-modality frames (CT/MR, laparoscopy) by the screener's
selection over each scorer's scores; Spearman rank agreement with the teacher; images/s with image
encoding counted on both sides, for the tiny-zh teacher and for a teacher of the tiny encoders plus
a Qwen2.5-0.5B-shaped random-init LLM (``benchmarks.generate``'s ``small-zh-0.5b``).

Table 2 (+ PNG chart): ``ultra-tiny-zh``'s accuracy on lesion presence and benign/malignant about
the described image, with all images, the screened images (kept only; kept + screener weights via
``Request.image_weights``) and only the described image (oracle). The question does not quote the
report, which states the answer.

    python -m benchmarks.screening [--out runs/benchmarks/screening] [--reports N]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image
from rich.console import Console
from rich.table import Table
from scipy.stats import spearmanr

from data_zh.builders.busi import IMPRESSIONS, LESION_QUESTIONS, MALIGNANCY_QUESTIONS, lesion_answer
from data_zh.builders.report_benchmark import ReportBenchmarkConfig, build_report_benchmark
from data_zh.converters.busi import LABEL_ZH
from data_zh.schema import Record
from screening import (
    LabelTrainingConfig,
    ReportScreener,
    ScreeningResult,
    load_student,
    new_student,
    reports_from_records,
    train_on_labels,
)
from screening.backbone import pooled_features
from screening.duplicates import duplicate_groups
from ultra.media import read_record_images

REPO_ROOT = Path(__file__).resolve().parents[1]
DISTILL_CONFIG = REPO_ROOT / "configs" / "screening-tiny-zh.yaml"
# Wordings that appear nowhere in the training reports (which use data_zh.builders.busi.IMPRESSIONS).
UNSEEN_WORDINGS = {
    "normal": ("双侧乳腺扫查未见占位性病变。", "本次乳腺超声检查未发现异常结节。"),
    "benign": ("乳腺低回声结节，边界清楚，良性可能大。", "乳腺结节形态规则，考虑良性肿物。"),
    "malignant": ("乳腺实性肿块，形态不规则，疑似恶性肿瘤。", "乳腺占位，边缘毛刺，恶性待排。"),
}
REJECTED_ROLES = {"blank": ("blank",), "other modality": ("other_modality", "laparoscopy")}
Scorer = Callable[[str, Sequence[Image.Image]], Sequence[float]]


def unseen_report(record: Record) -> str:
    label = record.labels.classes[0]
    wordings = UNSEEN_WORDINGS[label]
    assert not set(wordings) & set(IMPRESSIONS[label])
    return wordings[int(record.id.rsplit("-", 1)[-1]) % len(wordings)]


def truth_groups(record: Record) -> list[list[int]]:
    """The ground truth's near-duplicate groups: the described image with its copies, the rest alone."""
    described = [*record.extra["relevant"], *record.extra["duplicates"]]
    others = [[i] for i in range(record.media.count) if i not in described]
    return [sorted(described), *others]


def grouped_rank(scores: Sequence[float], groups: list[list[int]]) -> int:
    """1-based rank of the described group (groups[0]) when each group scores as its best member;
    ties count against the scorer."""
    best = [max(scores[i] for i in group) for group in groups]
    return 1 + sum(value >= best[0] for value in best[1:])


def pair_f1(found: list[list[int]], truth: list[list[int]]) -> tuple[int, int, int]:
    """(true positive, false positive, false negative) same-group pairs."""

    def pairs(groups):
        return {(a, b) for group in groups for a in group for b in group if a < b}

    got, want = pairs(found), pairs(truth)
    return len(got & want), len(got - want), len(want - got)


class StudentScorer:
    """A student's scores; each report's images are encoded once (on the first, timed call) and the
    features reused for the same images in other wordings and for the screener's verdicts."""

    def __init__(self, fusion, student) -> None:
        self.fusion, self.student = fusion, student.eval()
        self._features: dict[int, torch.Tensor] = {}

    def __call__(self, report: str, images: Sequence[Image.Image]) -> list[float]:
        key = id(images)
        if key not in self._features:
            self._features[key] = pooled_features(self.fusion, list(images))
        with torch.no_grad():
            return self.student.scores(self._features[key], report).tolist()


def _timed(scorer: Scorer, report: str, pictures: list[Image.Image]) -> tuple[list[float], float]:
    start = time.perf_counter()
    scores = [float(s) for s in scorer(report, pictures)]
    return scores, time.perf_counter() - start


def evaluate_scorer(
    name: str,
    scorer: Scorer,
    records: list[Record],
    pictures: list[list[Image.Image]],
    screener: ReportScreener,
    unseen: bool = True,
) -> dict:
    """Relevance metrics of one scorer over the validation reports (seen and, when ``unseen``,
    unseen wordings)."""
    ranks, unseen_ranks, all_scores, seconds, images = [], [], [], 0.0, 0
    rejected = {key: [0, 0] for key in REJECTED_ROLES}
    described_kept = 0
    for record, images_of in zip(records, pictures, strict=True):
        groups = truth_groups(record)
        scores, took = _timed(scorer, record.extra["report"], images_of)
        seconds += took
        images += len(images_of)
        all_scores.append(scores)
        ranks.append(grouped_rank(scores, groups))
        if unseen:
            unseen_ranks.append(grouped_rank(scorer(unseen_report(record), images_of), groups))
        result = screener.screen_with_scores(record.extra["report"], images_of, scores)
        described_kept += any(result.images[i].keep for i in groups[0])
        for key, roles in REJECTED_ROLES.items():
            for verdict, role in zip(result.images, record.labels.image_roles, strict=True):
                if role in roles:
                    rejected[key][0] += not verdict.keep
                    rejected[key][1] += 1
    ranks_np = np.array(ranks)
    unseen_np = np.array(unseen_ranks) if unseen_ranks else None
    return {
        "scorer": name,
        "top1": float((ranks_np == 1).mean()),
        "map": float((1 / ranks_np).mean()),
        "top1_unseen": float((unseen_np == 1).mean()) if unseen_np is not None else float("nan"),
        "map_unseen": float((1 / unseen_np).mean()) if unseen_np is not None else float("nan"),
        "described_kept": described_kept / len(records),
        **{
            f"rejected_{key}": (hit / total if total else float("nan"))
            for key, (hit, total) in rejected.items()
        },
        "images_per_s": images / seconds,
        "scores": all_scores,
    }


def spearman_with(reference: list[list[float]], other: list[list[float]]) -> float:
    values = [spearmanr(a, b).statistic for a, b in zip(reference, other, strict=True)]
    return float(np.nanmean(values))


def duplicate_f1(records: list[Record], pictures: list[list[Image.Image]], screener: ReportScreener) -> float:
    tp = fp = fn = 0
    for record, images_of in zip(records, pictures, strict=True):
        found = duplicate_groups(images_of, screener.config.duplicates)
        a, b, c = pair_f1(found, truth_groups(record))
        tp, fp, fn = tp + a, fp + b, fn + c
    return 2 * tp / max(2 * tp + fp + fn, 1)


def train_distilled(train_jsonl: Path, out: Path) -> Path:
    """The distilled student, by the committed recipe with only its data path and output moved."""
    from ultra.train import load_train_config
    from ultra.train.screening_student import train_screening_student

    settings = yaml.safe_load(DISTILL_CONFIG.read_text(encoding="utf-8"))
    settings["model"]["name_or_path"] = str(REPO_ROOT / settings["model"]["name_or_path"])
    settings["output_dir"] = str(out / "distill-run")
    settings["data"]["reports"]["path"] = str(train_jsonl)
    config_path = out / "screening-distill.yaml"
    config_path.write_text(yaml.safe_dump(settings, allow_unicode=True), encoding="utf-8")
    return train_screening_student(load_train_config(config_path), show_progress=False).student_dir


def teacher_speed_05b(pictures: list[list[Image.Image]], reports: list[str]) -> tuple[float, float]:
    """images/s of a teacher with the 0.5B-shaped LLM, and of a (fresh) student over its backbone."""
    from benchmarks.generate import build
    from ultra.answerer import Answerer
    from ultra.screen.teacher import ReportTeacher

    model, processor = build("small-zh-0.5b")
    model.config.projectors_trained = True  # random init: speed only, the scores mean nothing
    teacher = ReportTeacher(Answerer(model.eval(), processor))
    student = ReportScreener(model.vision_tower, new_student(model.vision_tower))
    rates = []
    for scorer in (teacher.scores, student.scores):
        scorer(reports[0], pictures[0][:1])  # warm-up: first-call allocations are not throughput
        seconds = images = 0.0
        for report, images_of in zip(reports, pictures, strict=True):
            seconds += _timed(scorer, report, images_of)[1]
            images += len(images_of)
        rates.append(images / seconds)
    return rates[0], rates[1]


def answer_accuracy(
    answerer, records: list[Record], pictures, screener: ReportScreener, scorer: Scorer
) -> dict:
    """Accuracy per condition and question type, greedy answers scored by ``ultra.eval``."""
    from ultra.answerer import GenerationSettings, Request
    from ultra.eval.score import GoldItem, score_item
    from ultra.screen.seams import screen_request

    settings = GenerationSettings(max_new_tokens=8)
    conditions: dict[str, list[tuple[list[Image.Image], list[float] | None]]] = {
        "all images": [],
        "screened (kept)": [],
        "screened (kept + weights)": [],
        "oracle (described only)": [],
    }
    for record, images_of in zip(records, pictures, strict=True):
        report = record.extra["report"]
        result: ScreeningResult = screener.screen_with_scores(report, images_of, scorer(report, images_of))
        whole = Request(LESION_QUESTIONS[0], list(images_of))
        kept, _ = screen_request(screener, report, whole, result=result)
        weighted, _ = screen_request(screener, report, whole, weigh=True, result=result)
        conditions["all images"].append((images_of, None))
        conditions["screened (kept)"].append((kept.images, kept.image_weights))
        conditions["screened (kept + weights)"].append((weighted.images, weighted.image_weights))
        conditions["oracle (described only)"].append(([images_of[record.extra["relevant"][0]]], None))
    questions = []
    for number, record in enumerate(records):
        label = record.labels.classes[0]
        questions.append((number, "lesion", LESION_QUESTIONS[0], lesion_answer(label)))
        if label != "normal":
            questions.append((number, "benign/malignant", MALIGNANCY_QUESTIONS[0], LABEL_ZH[label]))
    table = {}
    for condition, inputs in conditions.items():
        requests = [
            Request(question, list(inputs[n][0]), image_weights=inputs[n][1], settings=settings)
            for n, _, question, _ in questions
        ]
        answers = answerer.answer(requests, batch_size=8)
        hits: dict[str, list[bool]] = {}
        for (n, kind, _, gold), answer in zip(questions, answers, strict=True):
            item = GoldItem(f"{n}-{kind}", gold, "zh", "closed")
            hits.setdefault(kind, []).append(score_item(item, answer.text).closed_hit)
        images = sum(len(images_of) for images_of, _ in inputs)
        table[condition] = {
            **{kind: float(np.mean(values)) for kind, values in hits.items()},
            "n": {kind: len(values) for kind, values in hits.items()},
            "images_per_report": images / len(inputs),
        }
    return table


RELEVANCE_KEYS = (
    "top1",
    "map",
    "top1_unseen",
    "map_unseen",
    "described_kept",
    "rejected_blank",
    "rejected_other modality",
    "spearman_teacher",
)
"""The relevance table's columns, in order (terminal and markdown tables alike)."""


def _fmt(value: float) -> str:
    return "—" if np.isnan(value) else f"{value:.3f}"


def markdown(rows: dict, accuracy: dict, dup_f1: float, speed: dict) -> str:
    """Both tables as markdown (for docs/benchmarks.md)."""
    keys = RELEVANCE_KEYS
    lines = [
        "| scorer | top-1 | mAP | top-1, unseen wording | mAP, unseen wording | described kept | blank rejected "
        "| other modality rejected | Spearman vs teacher | images/s |",
        "|---|" + "---:|" * 9,
    ]
    for row in rows.values():
        values = " | ".join(_fmt(row[key]) for key in keys)
        rate = "—" if np.isnan(row["images_per_s"]) else f"{row['images_per_s']:.1f}"
        lines.append(f"| {row['scorer']} | {values} | {rate} |")
    lines += ["", f"Duplicate-group pair F1: {dup_f1:.3f}.", ""]
    lines += ["| teacher | student images/s | teacher images/s | student / teacher |", "|---|---:|---:|---:|"]
    for name, rate in (
        ("ultra-tiny-zh", speed["tiny_zh"]),
        ("tiny encoders + 0.5B-shaped LLM", speed["llm_0_5b_shaped"]),
    ):
        lines.append(f"| {name} | {rate['student']:.1f} | {rate['teacher']:.2f} | {rate['ratio']:.1f}x |")
    lines += [
        "",
        "| images given | images/report | lesion presence | benign/malignant |",
        "|---|---:|---:|---:|",
    ]
    for condition, row in accuracy.items():
        lines.append(
            f"| {condition} | {row['images_per_report']:.2f} | {row['lesion']:.3f} (n={row['n']['lesion']}) "
            f"| {row['benign/malignant']:.3f} (n={row['n']['benign/malignant']}) |"
        )
    return "\n".join(lines) + "\n"


def accuracy_chart(table: dict, path: Path) -> None:
    from data_zh.figures import chinese_figure, save_figure

    names = {
        "all images": "全部图像",
        "screened (kept)": "筛选后",
        "screened (kept + weights)": "筛选后+权重",
        "oracle (described only)": "仅描述图像（上限）",
    }
    kinds = {"lesion": "是否可见病灶", "benign/malignant": "良性/恶性"}
    with chinese_figure((7.5, 4)) as figure:
        axis = figure.subplots()
        width = 0.8 / len(names)
        for k, (condition, label) in enumerate(names.items()):
            values = [table[condition][kind] for kind in kinds]
            positions = [x + (k - (len(names) - 1) / 2) * width for x in range(len(kinds))]
            bars = axis.bar(positions, values, width, label=label)
            axis.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7)
        axis.set_xticks(range(len(kinds)), list(kinds.values()))
        axis.set_ylim(0, 1.05)
        axis.set_ylabel("准确率")
        axis.set_title("ultra-tiny-zh 多图报告问答：筛选的作用（验证集）")
        axis.legend(
            fontsize=8, ncol=len(names), loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False
        )
        figure.tight_layout()
        save_figure(figure, path, dpi=130)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "runs" / "benchmarks" / "screening")
    parser.add_argument("--reports", type=int, default=None, help="cap on validation reports (default: all)")
    parser.add_argument(
        "--train-reports", type=int, default=None, help="cap on training reports (smoke runs)"
    )
    parser.add_argument("--speed-reports", type=int, default=3, help="reports timed with the 0.5B teacher")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(soft_wrap=True, width=240)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    # Training reports: train split only, no laparoscopy frames (they may not ship).
    train = build_report_benchmark(
        args.data / "busi",
        out / "train-reports",
        split="train",
        dicom_root=args.data / "dicom",
        seed=0,
        n_reports=args.train_reports,
        config=ReportBenchmarkConfig(laparoscopy=0),
    )
    val = build_report_benchmark(
        args.data / "busi",
        out / "val-reports",
        split="val",
        n_reports=args.reports,
        seed=1,
        laparoscopy_root=args.data / "laparoscopy_frames",
        dicom_root=args.data / "dicom",
    )
    console.print(f"reports: {len(train)} train, {len(val)} val ({time.perf_counter() - start:.0f} s)")

    from ultra.answerer import Answerer
    from ultra.screen.teacher import ReportTeacher

    answerer = Answerer.load("tiny-zh")
    fusion = answerer.model.vision_tower
    labels_only = new_student(fusion, "tiny-zh")
    train_on_labels(labels_only, fusion, reports_from_records(train), LabelTrainingConfig())
    console.print(f"labels-only student trained ({time.perf_counter() - start:.0f} s)")
    distilled = load_student(train_distilled(out / "train-reports" / "benchmark.jsonl", out))
    console.print(f"distilled student trained ({time.perf_counter() - start:.0f} s)")

    screener = ReportScreener(fusion, distilled)
    pictures = [read_record_images(record) for record in val]
    teacher = ReportTeacher(answerer)
    noise = random.Random(0)
    distilled_scores = StudentScorer(fusion, distilled)
    scorers: dict[str, Scorer] = {
        "random": lambda report, images: [noise.random() for _ in images],
        "student, labels only": StudentScorer(fusion, labels_only),
        "student, distilled": distilled_scores,
        "teacher (ultra-tiny-zh)": teacher.scores,
    }
    # The teacher is not scored on the unseen wordings: it is the slow part, and the question
    # is whether the students generalise beyond their training wordings.
    rows = {
        name: evaluate_scorer(name, scorer, val, pictures, screener, unseen=not name.startswith("teacher"))
        for name, scorer in scorers.items()
    }
    reference = rows["teacher (ultra-tiny-zh)"]["scores"]
    for row in rows.values():
        row["spearman_teacher"] = spearman_with(reference, row.pop("scores"))
    rows["random"]["images_per_s"] = float("nan")  # no images are read
    dup_f1 = duplicate_f1(val, pictures, screener)
    console.print(f"relevance scored ({time.perf_counter() - start:.0f} s)")
    few = slice(0, args.speed_reports)
    teacher_05b, student_05b = teacher_speed_05b(pictures[few], [r.extra["report"] for r in val[few]])
    accuracy = answer_accuracy(answerer, val, pictures, screener, distilled_scores)

    table = Table(
        title=f"Screening relevance, {len(val)} validation reports (BUSI val + CT/MR + laparoscopy)"
    )
    for column in (
        "scorer",
        "top-1",
        "mAP",
        "top-1 unseen wording",
        "mAP unseen wording",
        "described kept",
        "blank rejected",
        "other modality rejected",
        "Spearman vs teacher",
        "images/s",
    ):
        table.add_column(column)
    for row in rows.values():
        table.add_row(
            row["scorer"],
            *(_fmt(row[key]) for key in RELEVANCE_KEYS),
            "—" if np.isnan(row["images_per_s"]) else f"{row['images_per_s']:.1f}",
        )
    console.print(table)
    student_rate = rows["student, distilled"]["images_per_s"]
    teacher_rate = rows["teacher (ultra-tiny-zh)"]["images_per_s"]
    speed = {
        "tiny_zh": {"student": student_rate, "teacher": teacher_rate, "ratio": student_rate / teacher_rate},
        "llm_0_5b_shaped": {
            "student": student_05b,
            "teacher": teacher_05b,
            "ratio": student_05b / teacher_05b,
        },
    }
    map_ratio = rows["student, distilled"]["map"] / rows["teacher (ultra-tiny-zh)"]["map"]
    console.print(
        f"duplicate-group pair F1: {dup_f1:.3f} (target >= 0.9)\n"
        f"student mAP / teacher mAP: {map_ratio:.3f} (target >= 0.9)\n"
        f"speed, tiny-zh teacher: student {student_rate:.1f} vs teacher {teacher_rate:.1f} images/s = "
        f"{speed['tiny_zh']['ratio']:.1f}x\n"
        f"speed, 0.5B-shaped teacher ({args.speed_reports} reports): student {student_05b:.1f} vs teacher "
        f"{teacher_05b:.2f} images/s = {speed['llm_0_5b_shaped']['ratio']:.1f}x (target >= 20x)"
    )
    second = Table(title="ultra-tiny-zh answer accuracy on the validation reports' questions")
    for column in ("images given", "images/report", "lesion presence", "benign/malignant"):
        second.add_column(column)
    for condition, row in accuracy.items():
        second.add_row(
            condition,
            f"{row['images_per_report']:.2f}",
            f"{row['lesion']:.3f} (n={row['n']['lesion']})",
            f"{row['benign/malignant']:.3f} (n={row['n']['benign/malignant']})",
        )
    console.print(second)
    accuracy_chart(accuracy, out / "answer_accuracy.png")
    (out / "results.md").write_text(markdown(rows, accuracy, dup_f1, speed), encoding="utf-8")
    (out / "results.json").write_text(
        json.dumps(
            {
                "relevance": list(rows.values()),
                "duplicate_f1": dup_f1,
                "map_ratio": map_ratio,
                "speed": speed,
                "answer_accuracy": accuracy,
                "train_reports": len(train),
                "val_reports": len(val),
                "wall_s": time.perf_counter() - start,
            },
            ensure_ascii=False,
            indent=2,
        ),
        encoding="utf-8",
    )
    console.print(
        f"chart: {out / 'answer_accuracy.png'}; all numbers: {out / 'results.json'} "
        f"({time.perf_counter() - start:.0f} s)"
    )


if __name__ == "__main__":
    main()
