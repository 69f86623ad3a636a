"""``SOURCES``: every named source of records, one entry each.

Names say what the records are (``busi_instructions`` and ``busi_vqa`` read the same images for
different jobs). The loaders import their builders on first use, so listing the registry (help
texts, ``ultra data sources``) reads no data and loads no heavy module.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from data_zh.schema import Record
from data_zh.sources.spec import DataSourceSpec
from fusion.registry import Registry

logger = logging.getLogger(__name__)

BUSI_ROOT = "a BUSI-layout folder (labels.csv, images/)"
LAPAROSCOPY_ROOT = "the laparoscopy frames folder (classes.txt, <subset>/images, <subset>/labels)"
DICOM_ROOT = "a folder of .dcm files"
BUSBRA_ROOT = "the BUS-BRA folder (bus_data.csv, 5-fold-cv.csv, Images/, Masks/)"


def of_split(records: list[Record], split: str) -> list[Record]:
    """The records tagged with ``split`` (``"all"``: every record)."""
    return records if split == "all" else [record for record in records if record.split == split]


def _committed_splits(name: str) -> list[str]:
    from data_zh.splits import load_split

    return sorted(load_split(name))


def _converted(converter: str):
    """A loader that converts the dataset's own files and keeps the records of the split asked."""

    def load(root: Path, split: str, **options: Any) -> list[Record]:
        from data_zh.converters import convert

        return of_split(convert(converter, root, **options), split)

    return load


def _records_file(root: Path, split: str) -> list[Record]:
    from data_zh.io import read_records

    return of_split(read_records(root), split)


def _busi_instructions(root: Path, split: str, phrasings: int = 1, wordings: str = "train") -> list[Record]:
    from data_zh.builders import build_busi_instructions

    return build_busi_instructions(root, split, phrasings=phrasings, wordings=wordings)


def _busi_vqa(root: Path, split: str, wordings: str = "train") -> list[Record]:
    from data_zh.builders import build_busi_vqa

    return build_busi_vqa(root, split, wordings=wordings)


def _busbra_vqa(root: Path, split: str, wordings: str = "train") -> list[Record]:
    from data_zh.builders.busbra import build_busbra_vqa

    return build_busbra_vqa(root, split, wordings=wordings)


def _busi_question_types(root: None, split: str, wordings: str = "train") -> list[Record]:
    from data_zh.builders import build_question_type_instructions

    return build_question_type_instructions(wordings)


def _each_split(dataset: str, build, root: Path, split: str) -> list[Record]:
    """A builder of one committed split at a time, over every split for ``"all"``."""
    names = _committed_splits(dataset) if split == "all" else [split]
    return [record for name in names for record in build(root, name)]


def _dicom_instructions(root: Path, split: str) -> list[Record]:
    from data_zh.builders import build_dicom_instructions

    return _each_split("dicom", lambda r, s: build_dicom_instructions(r, split=s), root, split)


def _laparoscopy_instructions(root: Path, split: str) -> list[Record]:
    from data_zh.builders import build_laparoscopy_instructions

    return _each_split("laparoscopy", build_laparoscopy_instructions, root, split)


def _laparoscopy_video(root: Path, split: str) -> list[Record]:
    from data_zh.builders import build_laparoscopy_video

    return _each_split("laparoscopy", build_laparoscopy_video, root, split)


def _phantom(root: Path, split: str, count: int = 3000, size: int = 256, seed: int = 0) -> list[Record]:
    from data_zh.builders import build_phantom_records

    logger.info("phantoms: %d images of %d px in %s", count, size, root)
    return build_phantom_records(root, count, size, seed)


def _report_benchmark(
    root: Path,
    split: str,
    out: str | Path,
    laparoscopy_root: str | Path | None = None,
    dicom_root: str | Path | None = None,
    seed: int = 0,
    n_reports: int | None = None,
) -> list[Record]:
    from data_zh.builders import build_report_benchmark

    return build_report_benchmark(
        root,
        out,
        split=split,
        laparoscopy_root=laparoscopy_root,
        dicom_root=dicom_root,
        n_reports=n_reports,
        seed=seed,
    )


SOURCES: Registry[DataSourceSpec] = Registry(
    "data source",
    {
        "records": DataSourceSpec(
            "records in the unified schema, as written by ultra data convert/build",
            _records_file,
            root="a unified-schema .jsonl file",
        ),
        "llava": DataSourceSpec(
            "LLaVA-format conversations (paths relative to image_root, else the file's folder)",
            _converted("llava"),
            root="a LLaVA .json/.jsonl file or a folder of them",
            options=("image_root",),
        ),
        "busi_instructions": DataSourceSpec(
            "BUSI instruction tasks per image: site, lesion, 良恶性, impression, question generation",
            _busi_instructions,
            root=BUSI_ROOT,
            options=("phrasings", "wordings"),
            default_split="train",
            test_split="val",
            dataset="busi",
            folder="busi",
        ),
        "busi_vqa": DataSourceSpec(
            "BUSI-zh closed questions with gold answers from labels.csv (the evaluation set)",
            _busi_vqa,
            root=BUSI_ROOT,
            options=("wordings",),
            default_split="val",
            test_split="val",
            dataset="busi",
            folder="busi",
        ),
        "busi_question_types": DataSourceSpec(
            "text only: the answer form each BUSI question wording asks for, and stated findings",
            _busi_question_types,
            root=None,
            options=("wordings",),
            dataset="busi",
        ),
        "busi_labels": DataSourceSpec(
            "one BUSI classification record per labels.csv row, tagged with its committed split",
            _converted("busi"),
            root=BUSI_ROOT,
            test_split="val",
            dataset="busi",
            folder="busi",
        ),
        "busbra_vqa": DataSourceSpec(
            "BUS-BRA closed questions: site, lesion (always 是), 良恶性 from biopsy; each image's facts kept",
            _busbra_vqa,
            root=BUSBRA_ROOT,
            options=("wordings",),
            default_split="val",
            test_split="val",
            dataset="busbra",
            folder="busbra",
        ),
        "busbra_labels": DataSourceSpec(
            "one BUS-BRA record per image: pathology, histology, BI-RADS, scanner, box, mask, patient, view",
            _converted("busbra"),
            root=BUSBRA_ROOT,
            test_split="val",
            dataset="busbra",
            folder="busbra",
        ),
        "dicom_instructions": DataSourceSpec(
            "modality questions (超声 / CT / 磁共振, 是否为超声) on DICOM files, from the Modality tag",
            _dicom_instructions,
            root=DICOM_ROOT,
            default_split="train",
            test_split="val",
            dataset="dicom",
            folder="dicom",
        ),
        "dicom_modality": DataSourceSpec(
            "one modality-recognition record per DICOM file (frame 0), with its header",
            _converted("dicom"),
            root=DICOM_ROOT,
            test_split="val",
            dataset="dicom",
            folder="dicom",
        ),
        "laparoscopy_frames": DataSourceSpec(
            "laparoscopy frames with their oriented instrument and organ boxes",
            _converted("laparoscopy"),
            root=LAPAROSCOPY_ROOT,
            test_split="val",
            dataset="laparoscopy",
            folder="laparoscopy_frames",
        ),
        "laparoscopy_instructions": DataSourceSpec(
            "per laparoscopy frame: instruments, organs, presence of each class, question generation",
            _laparoscopy_instructions,
            root=LAPAROSCOPY_ROOT,
            default_split="train",
            test_split="val",
            dataset="laparoscopy",
            folder="laparoscopy_frames",
        ),
        "laparoscopy_video": DataSourceSpec(
            "video QA on laparoscopy clips: instruments, gallbladder, instrument count, first-to-last change",
            _laparoscopy_video,
            root=LAPAROSCOPY_ROOT,
            default_split="train",
            test_split="val",
            dataset="laparoscopy",
            folder="laparoscopy_frames",
        ),
        "slake": DataSourceSpec(
            "SLAKE medical VQA (zh and en; images under root/imgs, not shipped here)",
            _converted("slake"),
            root="the SLAKE folder (train.json, validate.json, test.json)",
            dataset="slake",
            folder="slake",
        ),
        "vqa_rad": DataSourceSpec(
            "VQA-RAD radiology VQA (English), the standard train/test split",
            _converted("vqa_rad"),
            root="the VQA-RAD folder (trainset.json, testset.json)",
            dataset="vqa_rad",
            folder="vqa_rad",
        ),
        "pathvqa": DataSourceSpec(
            "PathVQA pathology VQA (qas files or the parquet layout, whose images go to image_dir)",
            _converted("pathvqa"),
            root="the PathVQA folder (qas/<split>/<split>_qa.pkl|json or data/*.parquet)",
            options=("image_dir",),
            dataset="pathvqa",
        ),
        "promptcblue": DataSourceSpec(
            "PromptCBLUE Chinese medical text tasks (text only)",
            _converted("promptcblue"),
            root="the PromptCBLUE folder (train/dev/test .jsonl)",
            dataset="promptcblue",
            folder="promptcblue_toy_zh",
        ),
        "phantom": DataSourceSpec(
            "synthetic labelled ultrasound phantoms, rendered into root on first use",
            _phantom,
            root="the folder the phantoms are rendered into",
            options=("count", "size", "seed"),
            root_must_exist=False,
        ),
        "report_benchmark": DataSourceSpec(
            "the screening report benchmark: reports and their images written to out",
            _report_benchmark,
            root=BUSI_ROOT,
            options=("out", "laparoscopy_root", "dicom_root", "seed", "n_reports"),
            default_split="val",
            dataset="busi",
            folder="busi",
            writes_folder=True,
        ),
    },
)
