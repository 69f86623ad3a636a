"""The release that ships: ultra-tiny-zh and its screening student together, within the size budget (40 MB), with the
hashes the card records, answering the bundled examples as their README says; and the release's
own gates (licence, size) on hand-made runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ultra.release.release import (
    MAX_RELEASE_MB,
    ReleaseError,
    ReleasePaths,
    install_student,
    screening_config,
    shipped_files,
)
from ultra.release.shippable import LicenceError
from ultra.resources import embedded_model_dir, examples_dir
from ultra.screen.loading import shipped_student_dir

MODEL_DIR = embedded_model_dir()
STUDENT_DIR = shipped_student_dir()
EXAMPLES = examples_dir() / "busi"
shipped = pytest.mark.skipif(
    not (STUDENT_DIR / "student.json").is_file(), reason="no screening student ships with this checkout yet"
)


def _paths(weights: Path) -> ReleasePaths:
    return ReleasePaths(weights, weights / "examples", Path("busi"), Path("dicom"))


@shipped
def test_the_release_fits_the_size_budget_and_the_card_records_its_hashes():
    files = shipped_files(_paths(MODEL_DIR.parent))
    assert {f.name for f in files} >= {
        "ultra-tiny-zh/model.safetensors",
        "ultra-tiny-zh-screener/student.safetensors",
    }
    assert sum(f.size_mb for f in files) <= MAX_RELEASE_MB
    card = (MODEL_DIR / "MODEL_CARD.md").read_text(encoding="utf-8")
    for f in files:
        assert f"| `{f.name}` | {f.size_mb:.1f} | `{f.sha256}` |" in card, f"{f.name}: hash not in the card"


@shipped
def test_shipped_model_answers_the_bundled_examples_as_the_readme_says():
    from ultra.answerer import Answerer, GenerationSettings, Request
    from ultra.eval.canonical import canonical_label
    from ultra.media import read_image

    recorded = json.loads((EXAMPLES / "examples.json").read_text(encoding="utf-8"))
    readme = (EXAMPLES / "README.md").read_text(encoding="utf-8")
    rows = recorded["answers"]
    settings = GenerationSettings(max_new_tokens=16)
    requests = [
        Request(row["question"], [read_image(EXAMPLES / row["file"])], settings=settings) for row in rows
    ]
    answers = [answer.text for answer in Answerer.load().answer(requests, batch_size=4)]
    assert answers == [row["answer"] for row in rows]
    for row in rows:
        verdict = "right" if canonical_label(row["answer"]) == canonical_label(row["gold"]) else "wrong"
        line = f"| `{row['file']}` | {row['question']} | {row['answer']} | {row['gold']} | {verdict} |"
        assert line in readme, f"README.md lacks {line}"
    drawn = {example["file"]: example["source"] for example in recorded["drawn"]}
    licences = (examples_dir() / "LICENSES.md").read_text(encoding="utf-8")
    for name, source in drawn.items():
        assert f"| `busi/{name}` | BUSI `{source}` |" in licences, f"LICENSES.md: busi/{name} from {source}"


@shipped
def test_shipped_student_loads_on_the_shipped_model_and_screens_the_bundled_report():
    from ultra.media import read_image
    from ultra.screen.loading import load_report_screener

    report = json.loads((examples_dir() / "report" / "report.json").read_text(encoding="utf-8"))
    images = [read_image(examples_dir() / "report" / name) for name in report["images"]]
    result = load_report_screener().screen(report["report"], images)
    verdicts = result.images
    assert abs(sum(v.weight for v in verdicts) - 1) < 1e-5
    # image-2 is a crop of image-1: one group, one of the two kept and the other its duplicate
    described = verdicts[:2]
    assert described[0].group == described[1].group and sum(v.keep for v in described) == 1
    assert any((v.reason or "").startswith("duplicate_of:") for v in described)
    # image-3 (a normal image the malignant report does not describe) weighs less than the described one
    assert verdicts[2].weight < max(v.weight for v in described), verdicts


@shipped
def test_ultra_screen_uses_the_shipped_student_without_being_told(tmp_path):
    """The first-hour path: no --student, the student beside the model answers (JSON on stdout)."""
    from typer.testing import CliRunner

    from ultra.cli.main import app

    report = json.loads((examples_dir() / "report" / "report.json").read_text(encoding="utf-8"))
    images = [arg for name in report["images"] for arg in ("--image", str(examples_dir() / "report" / name))]
    result = CliRunner().invoke(app, ["screen", "--text", report["report"], *images, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    weights = [row["weight"] for row in payload["images"]]
    assert len(weights) == 3 and abs(sum(weights) - 1) < 1e-3, payload


def test_install_student_refuses_reports_with_non_commercial_frames(tmp_path):
    run, student, destination = tmp_path / "run", tmp_path / "student", tmp_path / "weights" / "screener"
    run.mkdir()
    student.mkdir()
    (student / "student.json").write_text("{}", encoding="utf-8")
    rows = [
        {
            "data_source": "reports",
            "source": "busi_report_benchmark",
            "records": 3,
            "licence": "CC BY 4.0; laparoscopy frames: Cholec80 (CC BY-NC-SA 4.0): non-commercial research only",
        }
    ]
    (run / "summary.json").write_text(json.dumps({"training_data": rows}), encoding="utf-8")
    with pytest.raises(LicenceError, match=r"reports \(busi_report_benchmark, 3 records"):
        install_student(student, run, destination)
    assert not destination.exists()
    rows[0]["licence"] = "CC BY 4.0; DICOM frames: MIT"
    (run / "summary.json").write_text(json.dumps({"training_data": rows}), encoding="utf-8")
    assert (install_student(student, run, destination) / "student.json").is_file()


def test_a_release_over_the_size_budget_is_refused(tmp_path):
    paths = _paths(tmp_path)
    paths.model_dir.mkdir(parents=True)
    paths.student_dir.mkdir(parents=True)
    with (paths.model_dir / "model.safetensors").open("wb") as handle:
        handle.truncate(int((MAX_RELEASE_MB - 1) * 2**20))
    (paths.student_dir / "student.safetensors").write_bytes(b"\0" * (2 * 2**20))
    with pytest.raises(ReleaseError, match=r"take 41\.0 MB, over the 40 MB budget"):
        shipped_files(paths)
    (paths.student_dir / "student.safetensors").write_bytes(b"\0" * 2**19)
    files = shipped_files(paths)
    assert [f.name for f in files] == [
        "ultra-tiny-zh/model.safetensors",
        "ultra-tiny-zh-screener/student.safetensors",
    ]
    assert re.fullmatch(r"[0-9a-f]{64}", files[1].sha256)


def test_the_release_trains_without_looking_at_val():
    from ultra.release.release import without_validation
    from ultra.train import load_train_config

    recipe = load_train_config(Path(__file__).resolve().parents[1] / "configs" / "tiny-zh.yaml")
    assert recipe.validation.source is not None and recipe.validation.source.split == "val"
    trained = without_validation(recipe)
    assert (
        trained.validation.source is None and trained.stages == recipe.stages and trained.data == recipe.data
    )


def test_the_student_recipe_is_pointed_at_the_fresh_model_and_reports(tmp_path):
    from ultra.train import load_train_config

    base = load_train_config(Path(__file__).resolve().parents[1] / "configs" / "screening-tiny-zh.yaml")
    config = screening_config(base, tmp_path / "model", tmp_path / "reports.jsonl", tmp_path / "out")
    assert config.model.name_or_path == str(tmp_path / "model")
    assert {source.path for source in config.data.values()} == {str(tmp_path / "reports.jsonl")}
    assert config.output_dir == str(tmp_path / "out") and config.stages == base.stages


def test_only_a_release_into_the_package_touches_the_bundled_examples_and_readme(tmp_path):
    from typer.testing import CliRunner

    from ultra.cli.main import app
    from ultra.release.release import SHIPPED_WEIGHTS, release_paths

    scratch = release_paths(tmp_path, Path("busi"), Path("dicom"))
    assert scratch.examples_out == tmp_path / "examples" / "busi" and scratch.project_readme is None
    package = release_paths(SHIPPED_WEIGHTS, Path("busi"), Path("dicom"))
    assert package.examples_out == EXAMPLES and package.model_dir == MODEL_DIR
    recipes = Path(__file__).resolve().parents[1] / "configs"
    result = CliRunner().invoke(
        app,
        [
            "release",
            "--config",
            str(recipes / "tiny-zh.yaml"),
            "--screening",
            str(recipes / "screening-tiny-zh.yaml"),
            "--max-steps",
            "1",
        ],
    )
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        "error: a --max-steps smoke run would replace the shipped model: pass --weights-dir DIR"
    )
