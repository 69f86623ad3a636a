"""Bad input through the real ``python -m ultra``: one ``error:`` line naming the input, no traceback.

Each case runs as a subprocess, as a user would meet it. The inputs are built here: a PNG header
claiming 13500x13500 pixels, JSON nested 100 000 deep, Latin-1 bytes, answers files with a missing
answer, a duplicate id or unknown ids, records whose media leave their root, and OUTDIR problems
of ``ultra dicom`` (refused by the dicom command itself or, failing that, by the CLI's handler).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from data_zh import write_records
from data_zh.schema import Media, Record, Turn, outside_root_reason
from ultra.cli.errors import GuardedGroup

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_ultra(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "ultra", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _png_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height``; its data is a few bytes (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _record(record_id: str, root: str | None, image: str) -> Record:
    return Record(
        id=record_id,
        source="toy",
        licence="CC0-1.0",
        specialty="breast",
        modality="US",
        language="zh",
        task="closed_vqa",
        answer_type="closed",
        media=Media(root=root, images=[image]),
        conversations=[
            Turn(role="user", content="<image>\n有病灶吗？"),
            Turn(role="assistant", content="是"),
        ],
    )


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """Every bad input, built once."""
    work = tmp_path_factory.mktemp("bad_input")
    (work / "huge.png").write_bytes(_png_claiming(13500, 13500))
    Image.new("RGB", (64, 64), (90, 90, 90)).save(work / "small.png")
    (work / "nested.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    (work / "latin1.jsonl").write_bytes(b'{"id": "caf\xe9"}\n')
    write_records([_record(f"q{i}", str(work), "small.png") for i in range(3)], work / "records.jsonl")
    (work / "no_answer.jsonl").write_text('{"id": "q0", "answer": "是"}\n{"id": "q1"}\n')
    (work / "duplicate.jsonl").write_text(
        "".join(json.dumps({"id": key, "answer": "是"}) + "\n" for key in ("q0", "q1", "q0", "q2"))
    )
    (work / "a_file").write_text("not a folder")
    (work / "source").mkdir()
    shutil.copy(REPO_ROOT / "ultra" / "examples" / "dicom" / "us_rgb_color.dcm", work / "source")
    shutil.copy(REPO_ROOT / "configs" / "tiny-zh.yaml", work / "tiny.yaml")
    return work


# (arguments, exit code, text the error line must hold, whether the CLI's handler reports it)
CASES = {
    "ask on a 13500x13500 PNG": (["ask", "-q", "x", "-i", "huge.png"], 2, "huge.png", False),
    "ask over --max-pixels": (
        ["ask", "-q", "x", "-i", "small.png", "--max-pixels", "100"],
        2,
        "small.png: image of 64x64 = 4,096 pixels exceeds the limit of 100 pixels",
        False,
    ),
    "ask, an empty question": (["ask", "-q", " ", "-i", "small.png"], 2, "--question is empty", False),
    "ask, --explain a folder": (
        ["ask", "-q", "x", "-i", "small.png", "--explain", "source"],
        2,
        "--explain source is a folder",
        False,
    ),
    "ask, --explain in a missing folder": (
        ["ask", "-q", "x", "-i", "small.png", "--explain", "missing/d/x.png"],
        2,
        "the folder missing/d does not exist",
        False,
    ),
    "stats on nested JSON": (
        ["data", "stats", "nested.jsonl"],
        2,
        "nested.jsonl:1: JSON nested too deeply",
        False,
    ),
    "stats on Latin-1": (["data", "stats", "latin1.jsonl"], 2, "latin1.jsonl:1: not UTF-8", False),
    "score, a line without answer": (
        ["eval", "score", "no_answer.jsonl", "-d", "records.jsonl", "--split", "all", "-o", "report"],
        2,
        "no_answer.jsonl:2: no 'answer'",
        True,
    ),
    "score, a duplicate id": (
        ["eval", "score", "duplicate.jsonl", "-d", "records.jsonl", "--split", "all", "-o", "report"],
        2,
        "duplicate.jsonl: 1 id(s) answered more than once: 'q0' (answers #1, #3)",
        True,
    ),
    # ultra dicom names no path (OUTDIR may sit inside a patient-named SOURCE): the role names the input
    "dicom, OUTDIR an existing file": (
        ["dicom", "source", "a_file"],
        2,
        "OUTDIR exists and is not a folder",
        None,
    ),
    "dicom, OUTDIR under a file (unwritable)": (["dicom", "source", "a_file/out"], 2, "OUTDIR", None),
    "train, a --set outside the recipe": (
        ["train", "tiny.yaml", "--set", "stages.5.epochs=1"],
        2,
        "stages has no item 5",
        False,
    ),
}


def _error_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_bad_input_ends_in_one_error_line_without_traceback(work, case):
    args, code, named, _ = CASES[case]
    result = run_ultra(*args, cwd=work)
    assert result.returncode == code, result.stdout[-1500:] + result.stderr[-1500:]
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    lines = _error_lines(result)
    if args[0] != "dicom":  # the dicom command words its own refusals
        assert len(lines) == 1 and named in lines[0], result.stdout[-1500:] + result.stderr[-1500:]
    assert named in result.stdout + result.stderr


def test_refused_explain_paths_write_and_create_nothing(work):
    """A folder given to ``--explain`` would have become ``FOLDER.png``; a missing folder is not made."""
    run_ultra("ask", "-q", "x", "-i", "small.png", "--explain", "source", cwd=work)
    run_ultra("ask", "-q", "x", "-i", "small.png", "--explain", "missing/d/x.png", cwd=work)
    assert not (work / "source.png").exists() and not (work / "missing").exists()


@pytest.mark.parametrize("case", [name for name, (*_, handled) in CASES.items() if handled], ids=str)
def test_verbose_adds_the_traceback(work, case):
    args, code, named, _ = CASES[case]
    result = run_ultra("--verbose", *args, cwd=work)
    assert result.returncode == code
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("error:") and named in result.stderr


@pytest.mark.parametrize("name", ["nested.jsonl", "latin1.jsonl"])
def test_validate_reports_undecodable_lines_as_problems(work, name):
    result = run_ultra("data", "validate", name, cwd=work)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    reason = (
        "JSON nested too deeply" if name == "nested.jsonl" else "not UTF-8 text (byte 0xe9 at position 12)"
    )
    assert f"{name}: line 1: record '?': <json>: {reason}" in result.stdout


def test_other_readers_name_the_file_of_undecodable_json_or_yaml(work, tmp_path):
    from ultra.config_io import ConfigError, load_config
    from ultra.eval.llava_med import read_llava_med_files
    from ultra.train.config import TrainConfig

    with pytest.raises(ValueError, match=r"nested\.jsonl: JSON nested too deeply to read"):
        read_llava_med_files(work / "nested.jsonl", work / "records.jsonl")
    (tmp_path / "gt.json").write_text("[]")
    with pytest.raises(ValueError, match=r"latin1\.jsonl:1: not UTF-8 text \(byte 0xe9 at position 12\)"):
        read_llava_med_files(tmp_path / "gt.json", work / "latin1.jsonl")
    (tmp_path / "deep.yaml").write_text("[" * 50_000 + "]" * 50_000)
    with pytest.raises(ConfigError, match=r"deep\.yaml: YAML nested too deeply to read"):
        load_config(tmp_path / "deep.yaml", TrainConfig)
    with pytest.raises(ConfigError, match=r"latin1\.jsonl: not UTF-8 text"):
        load_config(work / "latin1.jsonl", TrainConfig)


def test_handler_names_the_type_of_an_unexpected_error():
    app = typer.Typer(cls=GuardedGroup)

    @app.callback()
    def main(verbose: bool = typer.Option(False, "--verbose")) -> None:
        pass

    @app.command()
    def deep() -> None:
        def recurse(depth: int) -> int:
            return recurse(depth + 1) + 1

        recurse(0)

    result = CliRunner().invoke(app, ["deep"])
    assert result.exit_code == 2
    assert result.stderr.startswith("error: RecursionError: maximum recursion depth exceeded")
    assert "Traceback" not in result.output


def test_score_counts_and_warns_about_unknown_ids(work, caplog):
    from data_zh import read_records
    from ultra.eval.score import score_answers

    answers = [{"id": key, "answer": "是"} for key in ("q0", "q1", "q2", "zz1", "zz2")]
    metrics = score_answers(answers, read_records(work / "records.jsonl"), n_resamples=0)
    assert (metrics["n_unknown"], metrics["unknown_ids"], metrics["n_answered"]) == (2, ["zz1", "zz2"], 3)
    assert metrics["overall"]["closed_accuracy"] == 100.0
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned == ["2 answer id(s) match no question of the dataset and are ignored (e.g. zz1, zz2)"]


# --- datasets stay inside their media root -------------------------------------------------------


@pytest.fixture
def escaping(tmp_path) -> tuple[Path, list[Record]]:
    """A dataset folder, a real PNG outside it, and three records that reach that PNG from inside."""
    root = tmp_path / "dataset"
    (root / "sub").mkdir(parents=True)
    Image.new("RGB", (16, 16), (200, 10, 10)).save(tmp_path / "secret.png")
    Image.new("RGB", (16, 16), (10, 10, 200)).save(root / "inside.png")
    secret = tmp_path / "secret.png"
    records = [
        _record("climbs", str(root), "../" * len(root.parts) + str(secret).lstrip("/")),
        _record("absolute", str(root), str(secret)),
        _record("root-is-slash", "/", str(secret).lstrip("/")),
        _record("inside", str(root), "sub/../inside.png"),
    ]
    return root, records


def test_validate_refuses_media_outside_the_root_unless_allowed(escaping, tmp_path):
    _, records = escaping
    write_records(records, tmp_path / "records.jsonl")
    refused = run_ultra("data", "validate", "records.jsonl", cwd=tmp_path)
    assert refused.returncode == 1, refused.stdout
    lines = [line for line in refused.stdout.splitlines() if "refused" in line]
    assert [line.split("record '")[1].split("'")[0] for line in lines] == [
        "climbs",
        "absolute",
        "root-is-slash",
    ]
    assert "3 problem(s) in 4 record(s)" in refused.stdout
    allowed = run_ultra("data", "validate", "records.jsonl", "--allow-outside-root", cwd=tmp_path)
    assert allowed.returncode == 0 and "ok" in allowed.stdout, allowed.stdout


def test_loaders_refuse_media_outside_the_root_unless_allowed(escaping):
    from ultra.eval.generate import request_for
    from ultra.media import MediaError, read_record_media

    root, records = escaping
    *outside, inside = records
    for record in outside:
        with pytest.raises(MediaError, match="refused: "):
            read_record_media(record)
        with pytest.raises(MediaError, match="refused: "):
            request_for(record)  # what eval generate/run build each question from
        assert read_record_media(record, allow_outside_root=True).images[0].getpixel((0, 0)) == (200, 10, 10)
    assert read_record_media(inside).images[0].getpixel((0, 0)) == (10, 10, 200)
    # an --image-root override is then the media root: the record's own root "/" no longer counts
    with pytest.raises(MediaError, match="climbs out of the media root"):
        read_record_media(_record("x", "/", "../secret.png"), image_root=root)


@pytest.mark.parametrize(
    ("relative", "root", "refused"),
    [
        ("a/b.png", "/data", None),
        ("a/../b.png", "/data", None),
        ("..hidden.png", "/data", None),
        ("a/../../b.png", "/data", "climbs out"),
        ("/etc/passwd", "/data", "absolute path"),
        ("etc/shadow", "/", "whole file system"),
        ("etc/shadow", "/data/..", "whole file system"),
        ("b.png", "relative/root", None),
        ("../b.png", None, "climbs out"),
    ],
)
def test_outside_root_reason(relative, root, refused):
    reason = outside_root_reason(relative, root)
    assert reason is None if refused is None else refused in reason


# --- ask on a non-ultrasound DICOM -------------------------------------------------------------


def test_ask_warns_once_about_a_ct_dicom(shared_data, tmp_path):
    ct = shared_data / "dicom" / "ct_mr" / "CT_small.dcm"
    result = run_ultra("ask", "-q", "这是什么检查？", "-i", str(ct), "--max-new-tokens", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: not ultrasound (CT_small.dcm is CT); the model was trained on ultrasound images"
    ]
    assert "warning" not in result.stdout and "仅供研究" in result.stdout


def test_no_warning_for_ultrasound(shared_data):
    from ultra.cli.ask import non_ultrasound_note

    us = sorted((shared_data / "dicom" / "us").glob("*.dcm"))[:3]
    assert non_ultrasound_note([*us, REPO_ROOT / "ultra" / "examples" / "dicom" / "us_rgb_color.dcm"]) is None
    mr = shared_data / "dicom" / "ct_mr" / "MR_small.dcm"
    assert non_ultrasound_note([*us, mr]) == (
        "warning: not ultrasound (MR_small.dcm is MR); the model was trained on ultrasound images"
    )
