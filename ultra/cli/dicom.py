"""``ultra dicom SOURCE OUTDIR`` and ``ultra dicom-locate``: thin layers over :mod:`ultra.dicom`.

Nothing printed by default names a source path (they often hold a patient's name): inputs are
shown by id, and ``--show-paths`` adds the real paths on the operator's terminal (stderr) only.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()
operator = Console(stderr=True)

EXIT_FAILED_INPUTS = 3
EXIT_USAGE = 2


def dicom(
    source: str = typer.Argument(
        ..., help="Folder (recursive), text file of paths, or DICOMweb URL (http://…/dicom-web)."
    ),
    outdir: Path = typer.Argument(
        ..., help="Output folder (PNGs, metadata, results.jsonl, errors.jsonl, summary.json)."
    ),
    question: list[str] = typer.Option(
        [], "--question", help="Question to answer on each study (repeatable)."
    ),
    model: str | None = typer.Option(
        None, "--model", help="Model preset or folder (default: the embedded model)."
    ),
    allow_untrained: bool = typer.Option(False, "--allow-untrained", help="Allow a random-init model."),
    workers: int = typer.Option(1, "--workers", min=1, help="Decoding processes (or Ray tasks)."),
    engine: str = typer.Option(
        "pool", "--engine", help="pool (local processes) or ray (Ray Data, `cluster` extra)."
    ),
    resume: bool = typer.Option(
        False, "--resume", help="Skip instances already done (SOP Instance UID + file hash)."
    ),
    deid_key: Path | None = typer.Option(
        None, "--deid-key", help="HMAC key file for pseudonyms (kept outside OUTDIR)."
    ),
    keep_phi: bool = typer.Option(
        False, "--keep-phi", help="Do NOT de-identify (outputs keep patient data)."
    ),
    retain_device_identity: bool = typer.Option(
        False,
        "--retain-device-identity",
        help="Keep Manufacturer, model, serial numbers and station (PS3.15 Retain Device Identity Option).",
    ),
    frames: int = typer.Option(4, "--frames", min=1, help="Key frames sampled from each cine loop."),
    no_crop: bool = typer.Option(False, "--no-crop", help="Keep the whole frame instead of the scan region."),
    write_dicom: bool = typer.Option(False, "--write-dicom", help="Also write de-identified DICOM files."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Model batch size."),
    keep_burned_in_text: bool = typer.Option(
        False, "--keep-burned-in-text", help="Do NOT mask burned-in text or pixels outside the scan regions."
    ),
    no_ocr: bool = typer.Option(False, "--no-ocr", help="Mask by regions only, without OCR text detection."),
    screen: bool = typer.Option(
        False,
        "--screen",
        help="Screen each study's images against --report (or the questions); keep the valid ones.",
    ),
    report: str | None = typer.Option(None, "--report", help="Report text the images are screened against."),
    student: Path | None = typer.Option(
        None, "--student", help="Screening student folder (default: the one shipped with the model)."
    ),
    show_paths: bool = typer.Option(
        False, "--show-paths", help="Also print the real paths of failed/skipped inputs (terminal only)."
    ),
) -> None:
    """De-identify, crop and sample ultrasound DICOM studies; answer questions when asked.

    Burned-in text is masked in every image and written DICOM: everything outside the ultrasound
    regions, plus text found by OCR (the ocr extra). Inputs are named by id in every output;
    `ultra dicom-locate ID SOURCE` maps an id back to its file.

    Exit codes: 0 every input processed or deliberately skipped (other modality, duplicate,
    resumed); 3 some inputs failed (all listed in OUTDIR/errors.jsonl); 2 usage or environment
    error (bad SOURCE, unsafe OUTDIR, key file).
    """
    from ultra.dicom.batch import run_batch
    from ultra.dicom.burned_in import OCR_INSTALL_HINT, ocr_available
    from ultra.dicom.deid_key import DeidKeyError
    from ultra.dicom.dicomweb import DicomWebError
    from ultra.dicom.layout import LayoutError
    from ultra.dicom.process import ProcessOptions
    from ultra.dicom.sources import SourceError
    from ultra.dicom.studies import keep_all

    if engine not in ("pool", "ray"):
        raise typer.BadParameter("--engine must be 'pool' or 'ray'")
    options = ProcessOptions(
        frames_per_cine=frames,
        keep_phi=keep_phi,
        retain_device_identity=retain_device_identity,
        crop=not no_crop,
        write_dicom=write_dicom,
        resume=resume,
        keep_burned_in_text=keep_burned_in_text,
        ocr=not no_ocr,
    )
    if keep_phi:
        operator.print("[bold red]--keep-phi: outputs will contain patient data.[/]")
    elif keep_burned_in_text:
        operator.print("[bold red]--keep-burned-in-text: images may show patient data.[/]")
    elif not no_ocr and not ocr_available():
        operator.print(f"[yellow]burned-in text: region masking only; {OCR_INSTALL_HINT}[/]")
    answerer = None
    if question:
        from ultra.answerer import UntrainedModelError
        from ultra.dicom.answering import load_answerer

        try:
            answerer = load_answerer(model, batch_size=batch_size, allow_untrained=allow_untrained)
        except (UntrainedModelError, FileNotFoundError, OSError) as exc:
            operator.print(f"[red]{exc}[/]")
            raise typer.Exit(EXIT_USAGE) from None
    selector = keep_all
    if screen:
        selector = _screening_selector(report or " ".join(question), student)
    try:
        summary = run_batch(
            source,
            outdir,
            options,
            workers=workers,
            engine=engine,  # type: ignore[arg-type]
            deid_key=deid_key,
            questions=question,
            answerer=answerer,
            selector=selector,
            show_progress=True,
        )
    except (SourceError, LayoutError, DeidKeyError, DicomWebError, RuntimeError) as exc:
        operator.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    table = Table(title=f"ultra dicom → {outdir}")
    for column in ("inputs", "processed", "skipped", "failed", "frames", "studies", "seconds"):
        table.add_column(column, justify="right")
    table.add_row(
        *(
            str(getattr(summary, c))
            for c in ("inputs", "processed", "skipped", "failed", "frames", "studies", "seconds")
        )
    )
    console.print(table)
    if summary.failed or summary.skipped:
        console.print(f"details: {outdir / 'errors.jsonl'}", markup=False, highlight=False)
    if show_paths:
        _print_paths(source, outdir, deid_key)
    if summary.failed:
        raise typer.Exit(EXIT_FAILED_INPUTS)


def _screening_selector(report: str, student: Path | None):
    """The screener as the batch's image selector; a missing report or student is a usage error."""
    from ultra.screen import NoStudentError, load_report_screener
    from ultra.screen.seams import study_selector

    if not report:
        operator.print("error: --screen needs --report TEXT (or --question) to screen against", markup=False)
        raise typer.Exit(EXIT_USAGE)
    try:
        return study_selector(load_report_screener(student), report)
    except (NoStudentError, FileNotFoundError, ValueError) as exc:
        operator.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None


def _print_paths(source: str, outdir: Path, deid_key: Path | None) -> None:
    """id -> real path of each input in errors.jsonl, on stderr (the operator's terminal)."""
    from data_zh.io import read_jsonl
    from ultra.dicom.deid_key import load_or_create_key
    from ultra.dicom.sources import display_path, list_inputs

    listed = list_inputs(source, load_or_create_key(deid_key))
    relative = {item.id: display_path(item.relative) for item in listed}
    for _, row in read_jsonl(outdir / "errors.jsonl"):
        operator.print(f"{row['id']}  {relative.get(row['id'], '?')}", markup=False, highlight=False)


def dicom_locate(
    input_id: str = typer.Argument(..., help="An input id from errors.jsonl, run.log or the terminal."),
    source: str = typer.Argument(..., help="The SOURCE of the run (folder, file list or DICOMweb URL)."),
    deid_key: Path | None = typer.Option(None, "--deid-key", help="The key file of the run."),
) -> None:
    """Print the path (relative to SOURCE) of the input with this id; exit 2 when none matches."""
    from ultra.dicom.deid_key import DeidKeyError, load_or_create_key
    from ultra.dicom.sources import SourceError, display_path, locate

    try:
        found = locate(input_id, source, load_or_create_key(deid_key))
    except (SourceError, DeidKeyError) as exc:
        operator.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_USAGE) from None
    if not found:
        operator.print(f"error: no input of SOURCE has id {input_id} with this key", markup=False)
        raise typer.Exit(EXIT_USAGE)
    for item in found:
        console.print(display_path(item.relative), markup=False, highlight=False)
