"""The newcomer's examples: a seeded draw from val, and the model's answers right or wrong."""

from __future__ import annotations

import json

import pytest
import torch

from data_zh.converters.busi import read_busi_labels
from data_zh.splits import load_split
from ultra.release.examples import LABELS, draw_examples, write_examples


def test_draw_is_seeded_stratified_and_from_val_only(shared_data):
    labels = {key: row["label"] for key, row in read_busi_labels(shared_data / "busi").items()}
    drawn = draw_examples(0, labels)
    assert drawn == draw_examples(0, labels) and drawn != draw_examples(1, labels)
    val = set(load_split("busi")["val"])
    assert all(example.source in val and labels[example.source] == example.label for example in drawn)
    assert [example.file for example in drawn] == [f"{label}-{n}.png" for label in LABELS for n in (1, 2)]


def test_write_examples_records_every_answer(shared_data, tmp_path):
    from ultra.model import build_model

    torch.manual_seed(0)
    model, processor = build_model("debug-tiny", pretrained=False)
    model.config.projectors_trained = True  # as an export marks it; the answers' quality is not tested here
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    out = tmp_path / "busi"
    project = tmp_path / "README.md"
    project.write_text(
        "# p\n<!-- examples:start -->\nold table\n<!-- examples:end -->\nrest\n", encoding="utf-8"
    )
    paths = write_examples(
        tmp_path / "model",
        shared_data / "busi",
        3,
        out,
        copy_images=True,
        per_class=1,
        project_readme=project,
    )
    payload = json.loads(paths["examples"].read_text(encoding="utf-8"))
    assert payload["seed"] == 3 and len(payload["answers"]) == 2 * len(LABELS)
    readme = paths["readme"].read_text(encoding="utf-8")
    for row in payload["answers"]:
        verdict = "right" if row["correct"] else "wrong"
        assert (
            f"| `{row['file']}` | {row['question']} | {row['answer']} | {row['gold']} | {verdict} |" in readme
        )
    block = project.read_text(encoding="utf-8")
    assert (
        "old table" not in block
        and block.startswith("# p\n<!-- examples:start -->")
        and block.endswith("rest\n")
    )
    for row in payload["answers"]:
        assert f"| `ultra/examples/busi/{row['file']}` | {row['question']} | {row['answer']} |" in block
    project.write_text("no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="needs exactly one <!-- examples:start -->"):
        write_examples(tmp_path / "model", shared_data / "busi", 3, out, per_class=1, project_readme=project)
    for example in payload["drawn"]:
        assert (out / example["file"]).read_bytes() == (shared_data / "busi" / example["source"]).read_bytes()


def test_ultra_release_examples_prints_the_readme_and_refuses_a_readme_without_markers(shared_data, tmp_path):
    from typer.testing import CliRunner

    from ultra.cli.main import app
    from ultra.model import build_model

    torch.manual_seed(0)
    model, processor = build_model("debug-tiny", pretrained=False)
    model.config.projectors_trained = True
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    command = ["release", "examples", "--seed", "3", "--per-class", "1", "--model", str(tmp_path / "model")]
    command += ["--busi", str(shared_data / "busi"), "--out", str(tmp_path / "busi")]
    runner = CliRunner()
    done = runner.invoke(app, command)
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith("# BUSI examples") and "Drawn by `ultra release examples --seed 3`" in done.stdout
    assert (tmp_path / "busi" / "examples.json").is_file()
    (tmp_path / "README.md").write_text("no markers\n", encoding="utf-8")
    refused = runner.invoke(app, [*command, "--project-readme", str(tmp_path / "README.md")])
    assert refused.exit_code == 2 and refused.stderr.startswith("error: ") and "needs exactly one" in refused.stderr
