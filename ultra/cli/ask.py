"""``ultra ask``: one question about images (PNG/JPEG/DICOM) or a video, answered as it streams."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

from ultra import RESEARCH_NOTICE
from ultra.cli.media_options import MAX_PIXELS_HELP, media_limits
from ultra.resources import DEFAULT_MODEL


def non_ultrasound_note(paths: list[Path]) -> str | None:
    """One line naming the DICOM inputs whose Modality is not US (CT, MR …), or None.

    The models are trained on ultrasound; an answer about a CT slice is not worth much, and the
    user should hear so once, beside the answer rather than inside it.
    """
    from ultra.media import MediaError, dicom_modality, is_dicom_file

    others = []
    for path in paths:
        if path.is_file() and is_dicom_file(path):
            try:
                modality = dicom_modality(path)
            except MediaError:
                continue  # the reader reports an unreadable file itself
            if modality and modality != "US":
                others.append(f"{path.name} is {modality}")
    if not others:
        return None
    return f"warning: not ultrasound ({'; '.join(others)}); the model was trained on ultrasound images"


def explain_path_problem(path: Path) -> str | None:
    """Why ``--explain PATH`` cannot be written, or None: it must name a ``.png`` file in a folder
    that exists (a folder would become ``FOLDER.png`` beside it; missing folders are not made)."""
    if path.is_dir():
        return f"--explain {path} is a folder; give the path of the .png file to write"
    if path.suffix.lower() != ".png":
        return f"--explain {path} does not end in .png; give the path of the .png file to write"
    if not path.parent.is_dir():
        return f"--explain {path}: the folder {path.parent} does not exist (it is not created)"
    return None


def ask(
    question: str = typer.Option(..., "--question", "-q", help="The question, in Chinese or English."),
    image: list[Path] = typer.Option(
        None, "--image", "-i", help="An image (PNG/JPEG/DICOM); repeat for several."
    ),
    video: Path | None = typer.Option(None, "--video", help="A video file or a folder of ordered frames."),
    model: str = typer.Option(DEFAULT_MODEL, "--model", "-m", help="A preset name or a checkpoint folder."),
    adapter: Path | None = typer.Option(None, "--adapter", help="A LoRA adapter folder to apply."),
    frame: int = typer.Option(0, "--frame", help="Frame of a multi-frame DICOM file."),
    explain: Path | None = typer.Option(
        None, "--explain", help="Write an occlusion heat map PNG of the first image here."
    ),
    allow_untrained: bool = typer.Option(
        False, "--allow-untrained", help="Run a model whose image projectors were never trained."
    ),
    max_new_tokens: int = typer.Option(64, "--max-new-tokens", min=1),
    max_pixels: int | None = typer.Option(None, "--max-pixels", min=1, help=MAX_PIXELS_HELP),
    report: str | None = typer.Option(
        None,
        "--report",
        help="Report text the images belong to: with several images, they are screened against it "
        "first and only the kept ones are answered on (weights on stderr, or in --json).",
    ),
    student: Path | None = typer.Option(
        None, "--student", help="Screening student folder for --report (default: the shipped one)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print one JSON object: answer, screening (with --report), notice."
    ),
) -> None:
    """Ask a question about ultrasound images and print the streamed answer (仅供研究，非临床诊断)."""
    from rich.markup import escape

    from ultra.media import MediaError, read_image, read_video

    console = Console(soft_wrap=True)
    errors = Console(stderr=True, soft_wrap=True)
    refusal = "--question is empty; ask something about the images" if not question.strip() else None
    if refusal is None and explain is not None:
        refusal = explain_path_problem(explain)
    if refusal is not None:
        errors.print(f"error: {refusal}", markup=False, highlight=False)
        raise typer.Exit(2)
    limits = media_limits(max_pixels)
    try:
        images = [read_image(path, frame=frame, limits=limits) for path in image or []]
        frames = read_video(video, limits=limits) if video is not None else None
    except MediaError as error:
        errors.print(f"[red]error:[/red] {escape(str(error))}")
        raise typer.Exit(2) from None
    if report is not None and len(images) > 1:
        from ultra.screen.loading import student_folder

        try:  # a missing student is known before the model loads
            student_folder(student)
        except FileNotFoundError as error:
            errors.print(f"error: --report: {error}", markup=False, highlight=False)
            raise typer.Exit(2) from None
    note = non_ultrasound_note(list(image or []))
    if note is not None:
        errors.print(note, markup=False, highlight=False)
    from ultra.answerer import Answerer, GenerationSettings, Request, UntrainedModelError
    from ultra.model import WeightsNotFoundError

    try:  # the model (torch) loads only once the inputs are known to be readable
        answerer = Answerer.load(model, adapter=adapter, allow_untrained=allow_untrained)
    except (WeightsNotFoundError, FileNotFoundError, UntrainedModelError) as error:
        errors.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None

    request = Request(
        question, images, video_frames=frames, settings=GenerationSettings(max_new_tokens=max_new_tokens)
    )
    screening = None
    if report is not None and len(images) > 1:
        request, screening = _screened(answerer, request, report, student, errors)
        names = [str(path) for path in image]
        if not as_json:
            for verdict, name in zip(screening.images, names, strict=True):
                verdict_text = "keep" if verdict.keep else f"drop ({verdict.reason})"
                errors.print(f"screening: {name} weight {verdict.weight:.3f} {verdict_text}", markup=False)
    pieces = []
    for piece in answerer.stream(request):
        pieces.append(piece)
        if not as_json:
            console.print(piece, end="", markup=False, highlight=False)
    answer = "".join(pieces)
    if as_json:
        payload = {"answer": answer, "notice": RESEARCH_NOTICE}
        if screening is not None:
            payload["screening"] = screening.as_dict(names)
        print(json.dumps(payload, ensure_ascii=False))
    else:
        console.print()
    if explain is not None:
        if not images:
            errors.print("[yellow]--explain needs an image; no heat map written[/yellow]")
        elif not answer:
            errors.print("[yellow]empty answer; no heat map written[/yellow]")
        else:
            from ultra.explain import occlusion_map, save_heatmap

            occlusion = occlusion_map(answerer, request, answer, image_index=0)
            save_heatmap(answerer.processor.prepare_image(images[0]), occlusion, explain, question, answer)
            errors.print(f"heat map ({occlusion.method}): {explain}", markup=False, highlight=False)
    if not as_json:
        console.print(f"[dim]{RESEARCH_NOTICE}[/dim]")


def _screened(answerer, request, report: str, student: Path | None, errors: Console):
    """The request on the images the screener keeps for ``report``, and the screening result."""
    from screening import BackboneMismatchError
    from ultra.screen import NoStudentError, load_report_screener
    from ultra.screen.seams import screen_request

    try:
        screener = load_report_screener(student, fusion=answerer.model.vision_tower)
    except (NoStudentError, BackboneMismatchError, FileNotFoundError, ValueError) as error:
        errors.print(f"error: --report: {error}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    return screen_request(screener, report, request)
