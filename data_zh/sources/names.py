"""The names configs and commands have long accepted, each mapped to the one registry entry it means.

Shipped configs say ``kind: busi`` and ``ultra eval -d busi``, and those words meant different
sources (BUSI instruction tasks for training, the BUSI-zh closed questions for evaluation). They
keep working through these tables, and nowhere else: every other name is a ``SOURCES`` entry. A
dataset added later takes the same short evaluation names (``busbra``, ``busbra_heldout``) so
``ultra eval -d`` reads alike across datasets.
"""

from __future__ import annotations

from data_zh.sources.spec import SourceRef
from fusion.registry import Registry

TRAINING_NAMES: Registry[SourceRef] = Registry(
    "training source name",
    {
        "busi": SourceRef("busi_instructions"),
        "dicom": SourceRef("dicom_instructions"),
    },
)

EVALUATION_NAMES: Registry[SourceRef] = Registry(
    "evaluation dataset name",
    {
        "busi": SourceRef("busi_vqa", {"wordings": "train"}),
        "busi_heldout": SourceRef("busi_vqa", {"wordings": "heldout"}),
        "busbra": SourceRef("busbra_vqa", {"wordings": "train"}),
        "busbra_heldout": SourceRef("busbra_vqa", {"wordings": "heldout"}),
        "dicom": SourceRef("dicom_modality"),
        "laparoscopy": SourceRef("laparoscopy_frames"),
    },
)
