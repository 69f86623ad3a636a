"""``ultra dicom SOURCE OUTDIR``: a thin layer over :func:`ultra.dicom.run_batch`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console()


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
    frames: int = typer.Option(4, "--frames", min=1, help="Key frames sampled from each cine loop."),
    no_crop: bool = typer.Option(False, "--no-crop", help="Keep the whole frame instead of the scan region."),
    write_dicom: bool = typer.Option(False, "--write-dicom", help="Also write de-identified DICOM files."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Model batch size."),
) -> None:
    """De-identify, crop and sample ultrasound DICOM studies; answer questions when asked."""
    from ultra.dicom.batch import run_batch
    from ultra.dicom.deid_key import DeidKeyError
    from ultra.dicom.dicomweb import DicomWebError
    from ultra.dicom.process import ProcessOptions
    from ultra.dicom.sources import SourceError

    if engine not in ("pool", "ray"):
        raise typer.BadParameter("--engine must be 'pool' or 'ray'")
    options = ProcessOptions(
        frames_per_cine=frames, keep_phi=keep_phi, crop=not no_crop, write_dicom=write_dicom, resume=resume
    )
    if keep_phi:
        console.print("[bold red]--keep-phi: outputs will contain patient data.[/]")
    answerer = None
    if question:
        from ultra.answerer import UntrainedModelError
        from ultra.dicom.answering import load_answerer

        try:
            answerer = load_answerer(model, batch_size=batch_size, allow_untrained=allow_untrained)
        except (UntrainedModelError, FileNotFoundError, OSError) as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(2) from None
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
            show_progress=True,
        )
    except (SourceError, DeidKeyError, DicomWebError, RuntimeError) as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
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
        console.print(f"details: {outdir / 'errors.jsonl'}")
