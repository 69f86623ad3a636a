"""``ultra ask`` end to end on a random-init checkpoint, and the occlusion heat map behind --explain."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from ultra import RESEARCH_NOTICE
from ultra.answerer import Answerer, Request, UntrainedModelError, check_projectors_trained
from ultra.cli.main import app
from ultra.explain import occlusion_map, save_heatmap
from ultra.model import save_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tiny_model, tmp_path_factory):
    model, processor = tiny_model
    return save_checkpoint(model, processor, tmp_path_factory.mktemp("ask") / "random-init")


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "乳腺 超声.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
    return path


def test_ask_streams_an_answer_with_the_notice(checkpoint, png, tmp_path):
    heat = tmp_path / "heat.png"
    args = [
        "ask",
        "--model",
        str(checkpoint),
        "--allow-untrained",
        "-q",
        "是否可见病灶？",
        "--max-new-tokens",
        "4",
    ]
    result = CliRunner().invoke(
        app, [*args, "--image", str(png), "--image", str(png), "--explain", str(heat)]
    )
    assert result.exit_code == 0, result.output
    assert RESEARCH_NOTICE in result.output
    # a random model may answer with whitespace only; then no map is written, and the CLI says so
    assert heat.is_file() or "no heat map written" in result.output


def test_ask_answers_about_a_video_folder(checkpoint, tmp_path):
    frames = tmp_path / "clip"
    frames.mkdir()
    rng = np.random.default_rng(2)
    for index in range(5):
        Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(frames / f"frame_{index}.png")
    args = ["ask", "--model", str(checkpoint), "--allow-untrained", "-q", "视频中可见哪些器械？"]
    result = CliRunner().invoke(app, [*args, "--video", str(frames), "--max-new-tokens", "3"])
    assert result.exit_code == 0, result.output
    assert RESEARCH_NOTICE in result.output
    missing = CliRunner().invoke(app, [*args, "--video", str(tmp_path / "none.mp4")])
    assert missing.exit_code == 2 and "none.mp4" in missing.output


def test_ask_refuses_untrained_projectors_without_the_flag(checkpoint, png):
    result = CliRunner().invoke(
        app, ["ask", "--model", str(checkpoint), "-q", "是否可见病灶？", "--image", str(png)]
    )
    assert result.exit_code == 1
    assert "never trained" in result.output and "--allow-untrained" in result.output


def test_ask_names_an_unreadable_input_and_exits_non_zero(checkpoint, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image at all")
    runner = CliRunner()
    result = runner.invoke(app, ["ask", "--model", str(checkpoint), "-q", "q", "--image", str(broken)])
    assert result.exit_code == 2 and "broken.png" in result.output and "not a readable image" in result.output
    result = runner.invoke(
        app, ["ask", "--model", str(checkpoint), "-q", "q", "--image", str(tmp_path / "nope.jpg")]
    )
    assert result.exit_code == 2 and "nope.jpg: file not found" in result.output


def test_ask_with_a_folder_that_holds_no_model_fails_clearly(png, tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    result = CliRunner().invoke(
        app, ["ask", "--model", str(empty), "-q", "是否可见病灶？", "--image", str(png)]
    )
    assert result.exit_code == 1 and f"{empty}: not a model folder (no config.json)" in result.output


def test_check_projectors_trained(tiny_model):
    model, _ = tiny_model
    with pytest.raises(UntrainedModelError, match="never trained"):
        check_projectors_trained(model)
    check_projectors_trained(model, allow_untrained=True)


def test_occlusion_map_lights_up_only_where_the_image_has_content(tiny_model, tmp_path):
    """Blanking an already-blank cell changes nothing; blanking the textured quarter does."""
    from ultra import blank_like

    model, processor = tiny_model
    image = blank_like(Image.new("RGB", (64, 64)), model.vision_tower)
    texture = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    image.paste(Image.fromarray(texture), (0, 0))
    answerer = Answerer(model, processor, allow_untrained=True)
    occlusion = occlusion_map(answerer, Request("是否可见病灶？", [image]), "可见低回声结节", grid=4)
    assert occlusion.drops.shape == (4, 4)
    textured = np.abs(occlusion.drops[:2, :2])
    blank = np.abs(np.concatenate([occlusion.drops[:2, 2:].ravel(), occlusion.drops[2:, :].ravel()]))
    assert textured.min() > 0
    assert blank.max() < 0.1 * textured.max()
    path = save_heatmap(image, occlusion, tmp_path / "map.png", "是否可见病灶？", "可见低回声结节")
    with Image.open(path) as png_file:
        assert png_file.format == "PNG" and png_file.width > 100
