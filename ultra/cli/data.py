"""``ultra data``: convert sources to records, validate record files, count them (thin layer over data_zh)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

data_app = typer.Typer(
    help="Data in one schema: convert sources, build Chinese instruction/benchmark sets, validate, count, generate QA.",
    no_args_is_help=True,
)
console = Console()

def _fail(error: Exception) -> None:
    console.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True, highlight=False)
    raise typer.Exit(2)


def _write(records, out: Path, llava: bool) -> None:
    from data_zh import write_llava, write_records

    count = write_llava(records, out) if llava else write_records(records, out)
    console.print(f"wrote {count} record(s) to {out} ({'LLaVA JSONL' if llava else 'unified JSONL'})")


@data_app.command("sources")
def sources() -> None:
    """List the data sources (``build``, training configs' ``kind``, ``eval -d``) and the converters."""
    from data_zh.converters import CONVERTERS
    from data_zh.sources import EVALUATION_NAMES, SOURCES, TRAINING_NAMES

    table = Table(title=f"{len(SOURCES)} data source(s): ultra data build NAME ROOT")
    table.add_column("name", no_wrap=True)
    for column in ("root", "records"):
        table.add_column(column, overflow="fold")
    for name in SOURCES.names():
        spec = SOURCES[name]
        table.add_row(name, spec.root or "(none)", spec.description)
    console.print(table)
    table = Table(title=f"{len(CONVERTERS)} converter(s): ultra data convert NAME ROOT")
    table.add_column("name", no_wrap=True)
    table.add_column("layout", overflow="fold")
    for name in CONVERTERS.names():
        table.add_row(name, CONVERTERS[name].layout)
    console.print(table)
    table = Table(title="names kept for shipped configs and commands")
    for column in ("name", "where", "means"):
        table.add_column(column, no_wrap=column == "name", overflow="fold")
    for where, aliases in (("training kind", TRAINING_NAMES), ("ultra eval -d", EVALUATION_NAMES)):
        for name in aliases.names():
            ref = aliases[name]
            fixed = "".join(f", {key}={value}" for key, value in ref.options.items())
            table.add_row(name, where, f"{ref.source}{fixed}")
    console.print(table)


@data_app.command("convert")
def convert(
    source: str = typer.Argument(..., help="a converter (ultra data sources lists them: slake, busi, dicom, ...)"),
    root: Path = typer.Argument(..., help="the source's folder (or file, for llava)"),
    out: Path = typer.Option(..., "--out", "-o", help="output .jsonl"),
    llava: bool = typer.Option(False, "--llava", help="write LLaVA JSONL instead of unified records"),
    image_dir: Path | None = typer.Option(None, "--image-dir", help="pathvqa parquet: write its images here"),
    image_root: Path | None = typer.Option(
        None, "--image-root", help="llava: folder the image paths start from"
    ),
) -> None:
    """Convert one source into unified records (or LLaVA JSONL)."""
    from data_zh.converters import CONVERTERS, ConversionError, converters_taking
    from data_zh.converters import convert as convert_source
    from fusion.registry import UnknownEntryError

    given = {"image_dir": image_dir, "image_root": image_root}
    options = {name: value for name, value in given.items() if value is not None}
    try:
        takes = CONVERTERS[source].options
    except UnknownEntryError as error:
        _fail(error)
    for name in sorted(set(options) - set(takes)):
        _fail(ValueError(f"--{name.replace('_', '-')} applies to {', '.join(converters_taking(name))} only"))
    try:
        records = convert_source(source, root, **options)
    except (ConversionError, ValueError) as error:
        _fail(error)
    _write(records, out, llava)


@data_app.command("build")
def build(
    source: str = typer.Argument(..., help="a data source (ultra data sources lists them: busi_vqa, ...)"),
    root: Path = typer.Argument(..., help="dataset folder (BUSI layout; laparoscopy frames; DICOM folder)"),
    out: Path = typer.Option(..., "--out", "-o", help="output .jsonl (report_benchmark: output folder)"),
    split: str = typer.Option("train", "--split", help="committed split to build from (all: every split)"),
    llava: bool = typer.Option(False, "--llava", help="write LLaVA JSONL instead of unified records"),
    laparoscopy_root: Path | None = typer.Option(
        None, "--laparoscopy-root", help="report_benchmark distractors"
    ),
    dicom_root: Path | None = typer.Option(None, "--dicom-root", help="report_benchmark distractors"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Build records of one data source (Chinese instruction / evaluation data from a committed split)."""
    from data_zh import ConversionError
    from data_zh.sources import SOURCES, load_records
    from fusion.registry import UnknownEntryError

    try:
        spec = SOURCES[source]
        offered = {"out": out, "laparoscopy_root": laparoscopy_root, "dicom_root": dicom_root, "seed": seed}
        options = {name: value for name, value in offered.items() if name in spec.options and value is not None}
        records = load_records(source, root, split=split, **options)
    except (ConversionError, ValueError, FileNotFoundError, UnknownEntryError) as error:
        _fail(error)
    if spec.writes_folder:
        console.print(f"wrote {len(records)} record(s) and their media to {out}")
        return
    _write(records, out, llava)


@data_app.command("validate")
def validate(
    path: Path = typer.Argument(..., help="a .jsonl of unified records"),
    media_root: Path | None = typer.Option(
        None, "--media-root", help="resolve media here instead of media.root"
    ),
    no_media: bool = typer.Option(False, "--no-media", help="skip the check that media files exist"),
    allow_outside_root: bool = typer.Option(
        False,
        "--allow-outside-root",
        help="accept media paths that leave the media root (absolute, '..', a root of '/')",
    ),
    limit: int = typer.Option(50, "--limit", help="problems to print"),
) -> None:
    """Check every record and its media; exit 1 when anything is wrong.

    The media root is --media-root when given, else each record's media.root, else the file's
    folder; media paths must stay inside it (refused otherwise, unless --allow-outside-root).
    """
    from data_zh.validate import validate_records_file

    report = validate_records_file(
        path, media_root=media_root, check_media=not no_media, allow_outside_root=allow_outside_root
    )
    for problem in report.problems[:limit]:
        console.print(
            f"[red]{escape(str(path))}:[/red] {escape(str(problem))}", soft_wrap=True, highlight=False
        )
    if len(report.problems) > limit:
        console.print(f"… and {len(report.problems) - limit} more")
    if not report.ok:
        console.print(f"[red]{len(report.problems)} problem(s) in {report.records} record(s)[/red]")
        raise typer.Exit(1)
    console.print(f"[green]ok[/green]: {report.records} record(s), no problems")


def _records_of(path: Path) -> list:
    """Records of a .jsonl file, or of a source folder converted on the fly when its layout is known."""
    from data_zh import read_records
    from data_zh.converters import CONVERTERS, convert, detect_sources

    if not path.is_dir():
        return read_records(path)
    sources = detect_sources(path)
    if len(sources) != 1:
        found = f"it matches {' and '.join(sources)}" if sources else "its layout is not one this knows"
        raise ValueError(
            f"{path}: a folder, and {found}; convert it first: "
            f"ultra data convert SOURCE {path} -o records.jsonl (SOURCE: {', '.join(CONVERTERS)})"
        )
    records = convert(sources[0], path)
    console.print(
        f"{path}: {sources[0]} layout, converted on the fly ({len(records)} record(s))",
        markup=False,
        soft_wrap=True,
    )
    return records


@data_app.command("stats")
def stats(
    paths: list[Path] = typer.Argument(
        ..., help="one or more .jsonl files of unified records, or source folders (BUSI layout, SLAKE, ...)"
    ),
    chart: Path | None = typer.Option(None, "--chart", help="write a PNG bar chart here"),
) -> None:
    """Count records by source, specialty, task, modality, language, split and answer type."""
    from data_zh import ConversionError, RecordError
    from data_zh.stats import DIMENSIONS, plot_stats, record_stats

    try:
        records = [record for path in paths for record in _records_of(path)]
    except (RecordError, ConversionError, ValueError) as error:
        _fail(error)
    counts = record_stats(records)
    table = Table(title=f"{len(records)} record(s)")
    for column in ("dimension", "value", "count"):
        table.add_column(column, overflow="fold")
    for name, counter in counts.items():
        for value, count in counter.most_common():
            table.add_row(f"{DIMENSIONS[name]} {name}", value, str(count))
    console.print(table)
    if chart is not None:
        console.print(f"chart: {plot_stats(counts, chart)}")


@data_app.command("qagen")
def qagen(
    input_path: Path = typer.Argument(..., help="JSONL of texts ({id, text}) or unified records (reports)"),
    out: Path = typer.Argument(..., help="output .jsonl of QA records (resumed; OUT.log.jsonl beside it)"),
    backend: str = typer.Option(
        ..., "--backend", help="local:MODEL_DIR, openai:BASE_URL or replay:FILE.json"
    ),
    model: str | None = typer.Option(None, "--model", help="model name for an OpenAI-compatible endpoint"),
    api_key: str | None = typer.Option(None, "--api-key", envvar="OPENAI_API_KEY", help="endpoint API key"),
    timeout: float = typer.Option(60.0, "--timeout", min=0.1, help="seconds per HTTP request"),
    max_attempts: int = typer.Option(3, "--max-attempts", min=1, help="tries per stage before a failure"),
    prompts_dir: Path | None = typer.Option(
        None, "--prompts", help="folder with your own extract_facts.txt / write_qa.txt"
    ),
) -> None:
    """Two-stage QA generation: facts from each text, then Chinese QA pairs from the facts only."""
    from data_zh.qagen import (
        BackendError,
        Prompts,
        backend_from_spec,
        generate_qa,
        log_path_for,
        read_sources,
    )

    try:
        chosen = backend_from_spec(backend, model=model, api_key=api_key, timeout_s=timeout)
        prompts = Prompts.load(prompts_dir)
        sources = read_sources(input_path)
    except (ValueError, OSError, BackendError) as error:
        _fail(error)
    report = generate_qa(sources, chosen, out, prompts=prompts, max_attempts=max_attempts)
    console.print(
        f"{report.done} input(s) done, {report.skipped} already done, {len(report.failed)} failed; "
        f"{report.kept} QA pair(s) kept, {report.dropped} dropped by the guard, {report.duplicates} duplicate(s) "
        f"→ {escape(str(out))} (log: {escape(str(log_path_for(out)))})",
        highlight=False,
    )
    if report.failed and not report.done and not report.skipped:
        raise typer.Exit(1)
