"""DICOM input: reading, de-identification and batch processing of ultrasound studies."""

from ultra.dicom.batch import BatchSummary, make_pool, run_batch
from ultra.dicom.deid import Deidentifier
from ultra.dicom.deid_key import DeidKeyError, default_key_path, load_or_create_key
from ultra.dicom.errors import DicomReadError
from ultra.dicom.layout import LayoutError, check_layout
from ultra.dicom.process import InstanceOutcome, ProcessOptions, process_input
from ultra.dicom.sources import InputItem, input_id, list_inputs, locate
from ultra.dicom.studies import ImageSelector, Study, StudyImage, keep_all
from ultra.media.dicom import decode_frame_rgb, frame_count, load_dicom_image, read_dataset

__all__ = [
    "BatchSummary",
    "DeidKeyError",
    "Deidentifier",
    "DicomReadError",
    "ImageSelector",
    "InputItem",
    "InstanceOutcome",
    "LayoutError",
    "ProcessOptions",
    "Study",
    "StudyImage",
    "check_layout",
    "decode_frame_rgb",
    "default_key_path",
    "frame_count",
    "input_id",
    "keep_all",
    "list_inputs",
    "load_dicom_image",
    "load_or_create_key",
    "locate",
    "make_pool",
    "process_input",
    "read_dataset",
    "run_batch",
]
