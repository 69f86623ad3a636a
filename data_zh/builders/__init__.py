"""Instruction and benchmark builders: Chinese data from real labels only."""

from data_zh.builders.busi import build_busi_instructions, build_busi_vqa
from data_zh.builders.dicom import build_dicom_instructions
from data_zh.builders.laparoscopy import build_laparoscopy_instructions
from data_zh.builders.laparoscopy_video import build_laparoscopy_video, laparoscopy_clips
from data_zh.builders.report_benchmark import ReportBenchmarkConfig, build_report_benchmark

__all__ = [
    "ReportBenchmarkConfig",
    "build_busi_instructions",
    "build_busi_vqa",
    "build_dicom_instructions",
    "build_laparoscopy_instructions",
    "build_laparoscopy_video",
    "build_report_benchmark",
    "laparoscopy_clips",
]
