"""``ultra dicom`` batches: every shared file plus broken ones, accounting, resume, engines, CLI."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGLSLossless
from typer.testing import CliRunner

from ultra.cli.main import app
from ultra.dicom import ProcessOptions, Study, keep_all, make_pool, run_batch
from ultra.dicom.outputs import TEMP_SUFFIX
from ultra.dicom.sources import input_id

KEY = "batch-test-key-0123456789abcdef"
# The shared files reuse SOP Instance UIDs: the first (sorted) copy is processed, the rest skipped.
DUPLICATES = {
    "us/OBXXXX1A_rle_2frame.dcm": "us/OBXXXX1A_2frame.dcm",
    "us/examples_palette.dcm": "us/OBXXXX1A_2frame.dcm",
    "us/color-px.dcm": "us/color-pl.dcm",
}
BAD = [
    "bad/truncated.dcm",
    "bad/random.dcm",
    "bad/empty.dcm",
    "bad/picture.dcm",
    "bad/nopixels.dcm",
    "bad/mpeg2.dcm",
]


def make_bad_inputs(us_file: Path, folder: Path) -> None:
    """The five broken inputs of the issue (truncated, random bytes, empty, PNG renamed, no pixels)
    and an MPEG-2 video object, whose transfer syntax no pixel decoder reads."""
    folder.mkdir(parents=True, exist_ok=True)
    ds = pydicom.dcmread(us_file)
    ds.SOPInstanceUID = pydicom.uid.generate_uid()  # a different instance, not a duplicate
    ds.save_as(folder / "whole.dcm")
    data = (folder / "whole.dcm").read_bytes()
    (folder / "whole.dcm").unlink()
    (folder / "truncated.dcm").write_bytes(data[: len(data) // 2])
    (folder / "random.dcm").write_bytes(np.random.default_rng(0).bytes(4096))
    (folder / "empty.dcm").write_bytes(b"")
    Image.new("RGB", (16, 16), "red").save(folder / "picture.png")
    (folder / "picture.png").rename(folder / "picture.dcm")
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    del ds.PixelData
    ds.save_as(folder / "nopixels.dcm")
    video = pydicom.dcmread(us_file)
    video.SOPInstanceUID = pydicom.uid.generate_uid()
    video.file_meta.TransferSyntaxUID = pydicom.uid.MPEG2MPML
    video.PixelData = encapsulate([video.PixelData])
    video.save_as(folder / "mpeg2.dcm")


def _tree(root: Path, skip: tuple[str, ...] = ("run.log", "summary.json")) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def _id(relative: str) -> str:
    return input_id(relative, KEY.encode())


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def pool() -> Iterator:
    executor = make_pool(2)
    yield executor
    executor.shutdown()


@pytest.fixture(scope="module")
def key_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("key") / "deid.key"
    path.write_text(KEY)
    return path


@pytest.fixture(scope="module")
def full_source(shared_data: Path, tmp_path_factory) -> Path:
    """All 16 shared files, a JPEG-LS file encoded here, and the five broken inputs."""
    root = tmp_path_factory.mktemp("source")
    for sub in ("us", "ct_mr"):
        shutil.copytree(shared_data / "dicom" / sub, root / sub)
    ds = pydicom.dcmread(shared_data / "dicom" / "us" / "US1_UNCR.dcm")
    ds.compress(JPEGLSLossless, encoding_plugin="pyjpegls")
    ds.SOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(root / "us" / "jpegls.dcm")
    make_bad_inputs(shared_data / "dicom" / "us" / "US1_UNCR.dcm", root / "bad")
    return root


@pytest.fixture(scope="module")
def full_run(full_source: Path, tmp_path_factory, pool, key_file: Path) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("out")
    summary = run_batch(full_source, out, ProcessOptions(), workers=2, deid_key=key_file, executor=pool)
    return out, summary


def test_every_input_is_accounted_for(full_run) -> None:
    out, summary = full_run
    assert summary.inputs == 16 + 1 + len(BAD)
    assert (summary.processed, summary.skipped, summary.failed) == (11, 6, len(BAD))
    assert summary.skip_reasons == {"not ultrasound": 3, "duplicate": 3}
    assert json.loads((out / "summary.json").read_text())["processed"] == 11
    errors = {e["id"]: e for e in _jsonl(out / "errors.jsonl")}
    other_modality = {"ct_mr/CT_small.dcm", "ct_mr/MR_small.dcm", "ct_mr/emri_small.dcm"}
    assert set(errors) == {_id(name) for name in set(BAD) | other_modality | set(DUPLICATES)}
    for name, first in DUPLICATES.items():
        assert errors[_id(name)]["reason"] == f"duplicate SOP Instance UID (same as {_id(first)})"
    ct = errors[_id("ct_mr/CT_small.dcm")]
    assert ct == {"id": _id("ct_mr/CT_small.dcm"), "status": "skipped", "reason": "modality is not US"}
    assert "empty file" in errors[_id("bad/empty.dcm")]["reason"]
    assert "not a DICOM file" in errors[_id("bad/picture.dcm")]["reason"]
    assert "no pixel data" in errors[_id("bad/nopixels.dcm")]["reason"]
    assert errors[_id("bad/truncated.dcm")]["reason"].startswith("truncated")
    assert "unsupported transfer syntax MPEG2" in errors[_id("bad/mpeg2.dcm")]["reason"]


def test_results_group_studies_with_uniform_weights(full_run) -> None:
    out, summary = full_run
    lines = _jsonl(out / "results.jsonl")
    assert len(lines) == summary.studies
    assert sum(line["instances"] for line in lines) == 11
    images = [image for line in lines for image in line["images"]]
    assert len(images) == len(set(images)) == summary.frames
    for line in lines:
        assert line["weights"] == pytest.approx([1 / len(line["images"])] * len(line["images"]), abs=1e-5)
        for image in line["images"]:
            assert Image.open(out / image).mode == "RGB"


def test_cine_loops_are_sampled_with_fusion_video(full_run) -> None:
    from fusion.frame_sampling import uniform_frame_indices

    out, _ = full_run
    records = [json.loads(p.read_text())["ultra"] for p in (out / "metadata").rglob("*.json")]
    cine = [r for r in records if r["frames_total"] == 30]
    assert len(cine) == 1
    assert cine[0]["frame_indices"] == sorted(set(uniform_frame_indices(30, 4)))
    assert len(cine[0]["images"]) == 4
    two = [r for r in records if r["frames_total"] == 2]
    assert len(two) == 1 and all(r["frame_indices"] == [0, 1] for r in two)
    by_source = {r["crop_source"] for r in records}
    assert by_source == {"regions", "detected"}


def test_resume_after_a_kill_gives_the_same_outputs(
    full_source: Path, tmp_path: Path, pool, key_file
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("us/OBXXXX1A_2frame.dcm", "us/gdcm-US-ALOKA-16.dcm", "us/US1_UNCR.dcm", "bad/random.dcm"):
        shutil.copy(full_source / name, source / Path(name).name)
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    run_batch(source, reference, ProcessOptions(), deid_key=key_file, executor=pool)
    run_batch(source, killed, ProcessOptions(), deid_key=key_file, executor=pool)
    # What a kill leaves: one instance without its record, a missing PNG, a half-written temp file.
    records = sorted((killed / "metadata").rglob("*.json"))
    records[0].unlink()
    pngs = sorted((killed / "images").rglob("*.png"))
    pngs[-1].unlink()
    (pngs[0].parent / f".{pngs[0].name}.abc{TEMP_SUFFIX}").write_bytes(b"partial")
    (killed / ".my-notes.tmp").write_text("the user's own file: never swept")
    (killed / "results.jsonl").unlink()
    resumed = run_batch(source, killed, ProcessOptions(resume=True), deid_key=key_file, executor=pool)
    assert resumed.processed in (1, 2) and resumed.processed + resumed.skipped == 3 and resumed.failed == 1
    assert resumed.skip_reasons == {"already done (resume)": 3 - resumed.processed}
    assert (killed / ".my-notes.tmp").read_text().startswith("the user's")
    (killed / ".my-notes.tmp").unlink()
    assert _tree(killed) == _tree(reference)
    first = json.loads((reference / "summary.json").read_text())
    assert resumed.frames == first["frames"], "resumed instances keep their frames in the summary"
    again = run_batch(source, killed, ProcessOptions(resume=True), deid_key=key_file, executor=pool)
    assert (again.processed, again.skipped, again.failed) == (0, 3, 1)
    assert _tree(killed) == _tree(reference)


def test_resume_redoes_a_changed_file(full_source: Path, tmp_path: Path, pool, key_file) -> None:
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(full_source / "us" / "examples_palette.dcm", source / "a.dcm")
    out = tmp_path / "out"
    run_batch(source, out, ProcessOptions(), deid_key=key_file, executor=pool)
    ds = pydicom.dcmread(source / "a.dcm")
    ds.InstanceNumber = 99  # same SOP Instance UID, different bytes
    ds.save_as(source / "a.dcm")
    summary = run_batch(source, out, ProcessOptions(resume=True), deid_key=key_file, executor=pool)
    assert (summary.processed, summary.skipped) == (1, 0)


def test_one_and_two_workers_and_ray_agree(full_source: Path, tmp_path: Path, pool, key_file) -> None:
    ray = pytest.importorskip("ray")
    source = tmp_path / "src"
    source.mkdir()
    # Files with ultrasound regions: Ray's fresh workers then need no torch-heavy fusion import.
    for name in ("us/examples_palette.dcm", "us/gdcm-US-ALOKA-16.dcm", "bad/empty.dcm"):
        shutil.copy(full_source / name, source / Path(name).name)
    one, two, on_ray = tmp_path / "one", tmp_path / "two", tmp_path / "ray"
    run_batch(source, one, ProcessOptions(), workers=1, deid_key=key_file)
    run_batch(source, two, ProcessOptions(), workers=2, deid_key=key_file, executor=pool)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False)
    try:
        summary = run_batch(source, on_ray, ProcessOptions(), workers=2, engine="ray", deid_key=key_file)
    finally:
        if started_here:
            ray.shutdown()
    assert (summary.processed, summary.failed) == (2, 1)
    assert _tree(one) == _tree(two) == _tree(on_ray)


def test_selector_seam_and_questions_need_an_answerer(
    full_source: Path, tmp_path: Path, pool, key_file
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(full_source / "us" / "OBXXXX1A_2frame.dcm", source / "cine.dcm")

    def first_only(study: Study, pictures):
        assert len(pictures) == len(study.images) and all(p.size[0] > 0 for p in pictures)
        return [(study.images[0], 1.0)]

    out = tmp_path / "out"
    run_batch(source, out, ProcessOptions(), deid_key=key_file, executor=pool, selector=first_only)
    (line,) = _jsonl(out / "results.jsonl")
    assert len(line["images"]) == 1 and line["weights"] == [1.0]
    run_batch(source, out, ProcessOptions(), deid_key=key_file, executor=pool, selector=keep_all)
    assert len(_jsonl(out / "results.jsonl")[0]["images"]) == 2
    with pytest.raises(ValueError, match="no answerer"):
        run_batch(source, out, ProcessOptions(), deid_key=key_file, questions=["是否可见病灶？"])


def test_questions_are_answered_per_study(full_source: Path, tmp_path: Path, pool, key_file) -> None:
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(full_source / "us" / "OBXXXX1A_2frame.dcm", source / "cine.dcm")
    shutil.copy(full_source / "us" / "gdcm-US-ALOKA-16.dcm", source / "aloka.dcm")
    seen: list[tuple[int, str]] = []

    def answer(requests):
        seen.extend((len(images), question) for images, question in requests)
        return [f"{len(images)}张图：{question}" for images, question in requests]

    out = tmp_path / "out"
    questions = ["检查部位是什么？", "是否可见病灶？"]
    run_batch(
        source, out, ProcessOptions(), deid_key=key_file, executor=pool, questions=questions, answerer=answer
    )
    lines = _jsonl(out / "results.jsonl")
    assert sorted(seen) == sorted([(2, q) for q in questions] + [(1, q) for q in questions])
    for line in lines:
        assert line["answers"] == [f"{len(line['images'])}张图：{q}" for q in questions]
    assert "检查部位" in (out / "results.jsonl").read_text(encoding="utf-8")


def test_cli_on_a_file_list(full_source: Path, tmp_path: Path, key_file) -> None:
    listing = tmp_path / "files.txt"
    listing.write_text(
        f"{full_source / 'us' / 'color-px.dcm'}\n# comment\n{full_source / 'bad' / 'empty.dcm'}\n"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["dicom", str(listing), str(out), "--deid-key", str(key_file)])
    assert result.exit_code == 3, result.output  # one input failed
    assert "processed" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["inputs"], summary["processed"], summary["failed"]) == (2, 1, 1)
    assert str(tmp_path) not in (out / "errors.jsonl").read_text()
    bad = CliRunner().invoke(app, ["dicom", str(tmp_path / "nowhere"), str(out), "--deid-key", str(key_file)])
    assert bad.exit_code == 2 and "is not a folder" in " ".join(bad.output.split())


def test_cli_answers_questions_with_the_model(full_source: Path, tmp_path: Path, key_file) -> None:
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(full_source / "us" / "OBXXXX1A_2frame.dcm", source / "cine.dcm")
    out = tmp_path / "out"
    args = ["dicom", str(source), str(out), "--deid-key", str(key_file), "--question", "是否可见病灶？"]
    args += ["--question", "检查部位是什么？", "--model", "debug-tiny"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and "--allow-untrained" in refused.output
    result = CliRunner().invoke(app, [*args, "--allow-untrained"])
    assert result.exit_code == 0, result.output
    (line,) = _jsonl(out / "results.jsonl")
    assert line["questions"] == ["是否可见病灶？", "检查部位是什么？"]
    assert len(line["answers"]) == 2 and all(isinstance(a, str) for a in line["answers"])


def test_answerer_from_the_tiny_model(tiny_model) -> None:
    from ultra.answerer import Answerer
    from ultra.dicom.answering import study_answerer

    answer = study_answerer(Answerer(*tiny_model, allow_untrained=True), batch_size=2, max_new_tokens=4)
    image = Image.new("RGB", (32, 32), "gray")
    answers = answer(
        [([image, image], "是否可见病灶？"), ([image], "检查部位？"), ([image], "良性还是恶性？")]
    )
    assert len(answers) == 3 and all(isinstance(a, str) for a in answers)


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("layout", ["same", "inside", "contains", "file", "not_writable"])
def test_unsafe_outdir_is_refused_before_writing(
    layout: str, full_source: Path, tmp_path: Path, key_file: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(full_source / "us" / "examples_palette.dcm", source / "a.dcm")
    (source / ".user-notes.tmp").write_text("the user's own temp file")
    (tmp_path / "afile").write_text("not a folder")
    out = {
        "same": source,
        "inside": source / "out",
        "contains": tmp_path,
        "file": tmp_path / "afile",
        "not_writable": tmp_path / "afile" / "sub",
    }[layout]
    before = _snapshot(tmp_path)
    result = CliRunner().invoke(app, ["dicom", str(source), str(out), "--deid-key", str(key_file)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: OUTDIR"), result.output
    assert str(tmp_path) not in result.output
    assert _snapshot(tmp_path) == before, "nothing may be written or deleted"


def test_inputs_are_named_by_id_and_located_by_the_operator(
    full_source: Path, tmp_path: Path, key_file: Path
) -> None:
    source = tmp_path / "ZHANG_San_PID42"
    source.mkdir()
    shutil.copy(full_source / "bad" / "truncated.dcm", source / "ZHANG_San_scan.dcm")
    shutil.copy(full_source / "us" / "examples_palette.dcm", source / "b.dcm")
    out = tmp_path / "out"
    args = ["dicom", str(source), str(out), "--deid-key", str(key_file), "--no-ocr"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 3, result.output
    (row,) = _jsonl(out / "errors.jsonl")
    assert row["id"] == _id("ZHANG_San_scan.dcm") and row["reason"].startswith("truncated")
    shared = (
        result.output
        + "".join(p.read_text("utf-8") for p in out.rglob("*.json*"))
        + (out / "run.log").read_text()
    )
    assert "ZHANG" not in shared and "PID42" not in shared
    assert (
        json.loads((out / "summary.json").read_text())["pixel_cleaning"]["mode"]
        == "regions only: OCR turned off"
    )
    shown = CliRunner().invoke(app, [*args, "--resume", "--show-paths"])
    assert shown.exit_code == 3 and f"{row['id']}  ZHANG_San_scan.dcm" in shown.output
    assert "ZHANG" not in (out / "run.log").read_text() + (out / "errors.jsonl").read_text()
    located = CliRunner().invoke(app, ["dicom-locate", row["id"], str(source), "--deid-key", str(key_file)])
    assert located.exit_code == 0 and located.output.strip() == "ZHANG_San_scan.dcm"
    missing = CliRunner().invoke(app, ["dicom-locate", "in-0000", str(source), "--deid-key", str(key_file)])
    assert missing.exit_code == 2 and "no input" in missing.output
