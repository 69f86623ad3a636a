"""DICOM input: reading, de-identification and batch processing of ultrasound studies."""

from ultra.dicom.errors import DicomReadError
from ultra.dicom.reader import decode_frame_rgb, frame_count, load_dicom_image, read_dataset

__all__ = ["DicomReadError", "decode_frame_rgb", "frame_count", "load_dicom_image", "read_dataset"]
