"""``ultra ask``: one question about images (PNG/JPEG/DICOM) or a video, answered as it streams."""

from __future__ import annotations

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
) -> None:
    """Ask a question about ultrasound images and print the streamed answer (仅供研究，非临床诊断)."""
    from rich.markup import escape

    from ultra.media import MediaError, read_image, read_video

    console = Console(soft_wrap=True)
    errors = Console(stderr=True, soft_wrap=True)
    limits = media_limits(max_pixels)
    try:
        images = [read_image(path, frame=frame, limits=limits) for path in image or []]
        frames = read_video(video, limits=limits) if video is not None else None
    except MediaError as error:
        errors.print(f"[red]error:[/red] {escape(str(error))}")
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
    pieces = []
    for piece in answerer.stream(request):
        pieces.append(piece)
        console.print(piece, end="", markup=False, highlight=False)
    console.print()
    answer = "".join(pieces)
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
    console.print(f"[dim]{RESEARCH_NOTICE}[/dim]")
