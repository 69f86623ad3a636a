"""ultra's side of screening: finding a student and its backbone (later: the VLM teacher and the
distillation objective). The student and the screener themselves live in ``screening``."""

from ultra.screen.loading import NoStudentError, load_report_screener, shipped_student_dir

__all__ = ["NoStudentError", "load_report_screener", "shipped_student_dir"]
