"""screening: score, weigh and select the images of a multi-image report (LLaVA-Ultra's screener).

The student here is the fast scorer over the VLM's own fusion backbone; the teacher (the full
VLM) and the distillation objective live in ``ultra``, which this package never imports.
"""

from screening.backbone import backbone_fingerprint, pooled_features
from screening.duplicates import DuplicateConfig, duplicate_groups
from screening.images import as_rgb_image
from screening.informative import InformativeConfig, is_uninformative, texture_stats
from screening.io import (
    BackboneMismatchError,
    check_backbone,
    load_bundled_backbone,
    load_student,
    read_student_config,
    save_student,
)
from screening.losses import distillation_loss, relevance_loss
from screening.screener import ImageVerdict, ReportScreener, ScreenerConfig, ScreeningResult
from screening.selection import SelectionConfig, select, softmax_weights
from screening.sheet import write_contact_sheet
from screening.student import ScreeningStudent, StudentConfig
from screening.text_encoder import ReportTokenizer, TextEncoder
from screening.training import (
    LabelledReport,
    LabelTrainingConfig,
    new_student,
    reports_from_records,
    train_on_labels,
)

__all__ = [
    "BackboneMismatchError",
    "DuplicateConfig",
    "ImageVerdict",
    "InformativeConfig",
    "LabelTrainingConfig",
    "LabelledReport",
    "ReportScreener",
    "ReportTokenizer",
    "ScreenerConfig",
    "ScreeningResult",
    "ScreeningStudent",
    "SelectionConfig",
    "StudentConfig",
    "TextEncoder",
    "as_rgb_image",
    "backbone_fingerprint",
    "check_backbone",
    "distillation_loss",
    "duplicate_groups",
    "is_uninformative",
    "load_bundled_backbone",
    "load_student",
    "new_student",
    "pooled_features",
    "read_student_config",
    "relevance_loss",
    "reports_from_records",
    "save_student",
    "select",
    "softmax_weights",
    "texture_stats",
    "train_on_labels",
    "write_contact_sheet",
]
