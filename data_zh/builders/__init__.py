"""Instruction and benchmark builders: Chinese data from real labels only."""

from data_zh.builders.busi import build_busi_instructions, build_busi_vqa
from data_zh.builders.dicom import build_dicom_instructions
from data_zh.builders.laparoscopy import build_laparoscopy_instructions
from data_zh.builders.laparoscopy_video import build_laparoscopy_video, laparoscopy_clips
from data_zh.builders.phantom import build_phantom_records
from data_zh.builders.question_types import build_question_type_instructions
from data_zh.builders.report_benchmark import ReportBenchmarkConfig, build_report_benchmark
from data_zh.builders.wordings import HELDOUT_WORDINGS, WORDING_SETS, question_wordings

__all__ = [
    "HELDOUT_WORDINGS",
    "WORDING_SETS",
    "ReportBenchmarkConfig",
    "build_busi_instructions",
    "build_busi_vqa",
    "build_dicom_instructions",
    "build_laparoscopy_instructions",
    "build_laparoscopy_video",
    "build_phantom_records",
    "build_question_type_instructions",
    "build_report_benchmark",
    "laparoscopy_clips",
    "question_wordings",
]
