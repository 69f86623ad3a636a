"""ultra's side of screening: finding a student and its backbone, and the VLM teacher (the
``distill`` training objective lives in ``ultra.train``). The student and the screener live in ``screening``."""

from ultra.screen.loading import NoStudentError, load_report_screener, shipped_student_dir

__all__ = ["NoStudentError", "ReportTeacher", "load_report_screener", "shipped_student_dir"]


def __getattr__(name: str):
    # The teacher pulls in the answerer (transformers); the CLI's screening path does not need it.
    if name == "ReportTeacher":
        from ultra.screen.teacher import ReportTeacher

        return ReportTeacher
    raise AttributeError(f"module 'ultra.screen' has no attribute {name!r}")
