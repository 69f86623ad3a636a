"""The screening teacher (PMI under the VLM), the ``distill`` objective and ``ultra screen train``.

The VLM is the random-init ``debug-tiny`` preset marked as trained (a teacher needs a model whose
projectors are declared trained); what is tested is the arithmetic and the plumbing, which hold
for any weights. Reports are real: the report benchmark builder over BUSI train images.
"""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from data_zh.builders.report_benchmark import ReportBenchmarkConfig, build_report_benchmark
from ultra.answerer import Answerer, blank_like
from ultra.screen.teacher import ReportTeacher
from ultra.train.checkpoint import latest_checkpoint, read_state

REPORT = "乳腺内见局灶性病灶，倾向良性。"


@pytest.fixture(scope="module")
def teacher_model(tiny_model):
    model, processor = tiny_model
    model = copy.deepcopy(model)
    model.config.projectors_trained = True
    return model, processor


@pytest.fixture(scope="module")
def reports_file(shared_data: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("reports")
    config = ReportBenchmarkConfig(
        duplicates=1, other_class=1, blank=1, laparoscopy=0, other_modality=0, max_side=96
    )
    build_report_benchmark(shared_data / "busi", folder, split="train", n_reports=6, seed=0, config=config)
    return folder / "benchmark.jsonl"


def _pictures(count: int) -> list[Image.Image]:
    rng = random.Random(0)
    return [Image.effect_noise((40 + 8 * i, 36), 30 + rng.random() * 40).convert("RGB") for i in range(count)]


def test_teacher_scores_a_blank_image_zero_and_is_order_equivariant(teacher_model) -> None:
    model, processor = teacher_model
    teacher = ReportTeacher(Answerer(model, processor))
    pictures = _pictures(3)
    pictures.append(blank_like(pictures[1], model.vision_tower))
    scores = teacher.scores(REPORT, pictures)
    assert scores.shape == (4,) and torch.isfinite(scores).all()
    assert abs(scores[3].item()) <= 1e-5, f"blank vs blank: {scores[3].item()}"
    assert scores[:3].abs().max() > 1e-4, "a random-init VLM still reacts to the image"
    order = [2, 0, 3, 1]
    permuted = teacher.scores(REPORT, [pictures[i] for i in order])
    torch.testing.assert_close(permuted, scores[order], rtol=1e-4, atol=1e-5)
    weights = teacher.weights(REPORT, pictures, temperature=0.5)
    assert abs(sum(weights) - 1.0) <= 1e-12


def test_kd_loss_is_zero_when_student_equals_teacher(teacher_model) -> None:
    from screening import new_student
    from ultra.train.objectives.distill import DistillOptions, ReportItem, StudentModule, distill_loss

    model, _ = teacher_model
    torch.manual_seed(0)
    module = StudentModule(new_student(model.vision_tower))
    features = torch.randn(5, model.vision_tower.hidden_size)
    with torch.no_grad():
        own = module(features, REPORT)
    no_labels = torch.zeros(5, dtype=torch.bool)
    kd_only = DistillOptions(temperature=2.0, label_weight=0.0)
    same = distill_loss(module, [ReportItem(features, REPORT, own.clone(), no_labels)], kd_only)
    assert abs(same.item()) <= 1e-6, same.item()
    other = distill_loss(module, [ReportItem(features, REPORT, own.flip(0) * 3, no_labels)], kd_only)
    assert other.item() > 1e-3
    labelled = torch.tensor([True, False, False, False, False])
    with_labels = distill_loss(
        module, [ReportItem(features, REPORT, own.clone(), labelled)], DistillOptions(label_weight=1.0)
    )
    assert with_labels.item() > 0.1, "the supervised term adds to a zero KD term"


def _config(reports_file: Path, model_dir: Path, out: Path, steps: int) -> dict:
    return {
        "model": {"name_or_path": str(model_dir)},
        "output_dir": str(out),
        "threads": 2,
        "data": {"reports": {"kind": "records", "path": str(reports_file)}},
        "stages": [
            {
                "name": "distill",
                "objective": "distill",
                "train": [],
                "max_steps": steps,
                "batch_size": 3,
                "lr": 1e-2,
                "warmup_ratio": 0.0,
                "objective_options": {"temperature": 1.0, "label_weight": 0.0},
            }
        ],
    }


def test_ultra_screen_train_lowers_the_kd_loss_and_saves_a_usable_student(
    teacher_model, reports_file: Path, tmp_path: Path
) -> None:
    from ultra.cli.main import app

    model, processor = teacher_model
    model_dir = tmp_path / "vlm"
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    config_path = tmp_path / "distill.yaml"
    out = tmp_path / "run"
    config_path.write_text(yaml.safe_dump(_config(reports_file, model_dir, out, steps=40)), encoding="utf-8")
    result = CliRunner().invoke(app, ["--quiet", "screen", "train", str(config_path), "--no-progress"])
    assert result.exit_code == 0, result.output
    losses = [row["loss"] for row in read_state(latest_checkpoint(out)).history]
    assert len(losses) == 40
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.5 * first, f"KD loss did not fall: first steps {losses[:5]}, last {losses[-5:]}"
    assert (out / "loss_curve.png").is_file() and (out / "student" / "student.json").is_file()
    student_config = json.loads((out / "student" / "student.json").read_text(encoding="utf-8"))
    assert student_config["backbone_source"] == str(model_dir.resolve())

    record = json.loads(reports_file.read_text(encoding="utf-8").splitlines()[0])
    images = [str(Path(record["media"]["root"]) / rel) for rel in record["media"]["images"]]
    args = ["screen", "--text", record["extra"]["report"], "--json", "--student", str(out / "student")]
    for path in images:
        args += ["--image", path]
    screened = CliRunner().invoke(app, args)
    assert screened.exit_code == 0, screened.output
    row = json.loads(screened.stdout.strip().splitlines()[-1])
    assert [item["image"] for item in row["images"]] == images
    assert abs(sum(item["weight"] for item in row["images"]) - 1.0) <= 1e-9


def test_distill_refuses_to_train_the_vlm(teacher_model, reports_file: Path, tmp_path: Path) -> None:
    from ultra.cli.main import app

    model, processor = teacher_model
    model_dir = tmp_path / "vlm"
    model.save_pretrained(model_dir)
    processor.save_pretrained(model_dir)
    settings = _config(reports_file, model_dir, tmp_path / "run", steps=2)
    settings["stages"][0]["train"] = ["*projectors*"]
    config_path = tmp_path / "bad.yaml"
    config_path.write_text(yaml.safe_dump(settings), encoding="utf-8")
    result = CliRunner().invoke(app, ["screen", "train", str(config_path), "--no-progress"])
    assert result.exit_code == 2 and "train: []" in result.output, result.output
