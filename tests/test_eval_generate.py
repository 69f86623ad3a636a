"""Generation into answers files with the tiny model: resume after a kill, missing media, blind run."""

from __future__ import annotations

import json

import pytest

from ultra.answerer import Answerer
from ultra.eval.answers import read_answers
from ultra.eval.generate import MissingMediaError, generate_answers_file
from ultra.eval.run import run_evaluation


@pytest.fixture(scope="module")
def busi_records(shared_data):
    from data_zh.builders import build_busi_vqa

    records = build_busi_vqa(shared_data / "busi", "val")
    # a few of each question type keeps the test fast on two cores
    return records[:4] + records[-4:]


def _ids(path):
    return [row["id"] for row in read_answers(path)]


def test_generate_kill_rerun_answers_only_missing_ids(tiny_model, busi_records, tmp_path):
    answerer = Answerer(*tiny_model, allow_untrained=True)
    path = tmp_path / "answers.jsonl"
    first = generate_answers_file(answerer, busi_records, path, batch_size=2, max_new_tokens=4, limit=3)
    assert first.answered == 3
    kept = path.read_text(encoding="utf-8")
    # the run is killed while writing the next line: a torn, half-written record stays behind
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "' + busi_records[3].id + '", "answ')
    assert _ids(path) == [r.id for r in busi_records[:3]]
    second = generate_answers_file(answerer, busi_records, path, batch_size=2, max_new_tokens=4)
    assert (second.already_answered, second.answered) == (3, len(busi_records) - 3)
    assert path.read_text(encoding="utf-8").startswith(kept)
    assert _ids(path) == [r.id for r in busi_records]
    third = generate_answers_file(answerer, busi_records, path, batch_size=2, max_new_tokens=4)
    assert third.answered == 0 and len(_ids(path)) == len(busi_records)
    row = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert row["question"] == busi_records[0].question and row["blank_images"] is False


def test_missing_media_is_reported_and_strict_fails(tiny_model, busi_records, tmp_path):
    answerer = Answerer(*tiny_model, allow_untrained=True)
    broken = busi_records[0].model_copy(
        update={"media": busi_records[0].media.model_copy(update={"images": ["images/benign/absent.png"]})}
    )
    records = [broken, *busi_records[1:3]]
    report = generate_answers_file(answerer, records, tmp_path / "a.jsonl", max_new_tokens=2)
    assert report.missing_media == [(broken.id, str(broken.media.resolve("images/benign/absent.png")))]
    assert _ids(tmp_path / "a.jsonl") == [r.id for r in records[1:]]
    with pytest.raises(MissingMediaError, match="absent.png"):
        generate_answers_file(answerer, records, tmp_path / "b.jsonl", strict=True, max_new_tokens=2)
    blind = generate_answers_file(
        answerer, records, tmp_path / "c.jsonl", blank_images=True, max_new_tokens=2
    )
    assert blind.answered == 3 and blind.missing_media == []
    corrupt_dir = tmp_path / "media"
    corrupt_dir.mkdir()
    (corrupt_dir / "bad.png").write_bytes(b"not a png at all")
    corrupt = busi_records[1].model_copy(
        update={
            "media": busi_records[1].media.model_copy(
                update={"root": str(corrupt_dir), "images": ["bad.png"]}
            )
        }
    )
    mixed = generate_answers_file(
        answerer, [corrupt, busi_records[2]], tmp_path / "d.jsonl", batch_size=2, max_new_tokens=2
    )
    assert mixed.answered == 1 and mixed.missing_media[0][0] == corrupt.id
    assert "unreadable" in mixed.missing_media[0][1]


def test_run_evaluation_writes_blind_check_and_baselines(tiny_model, busi_records, shared_data, tmp_path):
    from data_zh.builders import build_busi_vqa

    answerer = Answerer(*tiny_model, allow_untrained=True)
    train = build_busi_vqa(shared_data / "busi", "train")
    metrics = run_evaluation(
        answerer, busi_records, tmp_path, train_records=train, batch_size=4, max_new_tokens=4
    )
    assert len(read_answers(tmp_path / "answers.jsonl")) == len(busi_records)
    assert all(row["blank_images"] for row in read_answers(tmp_path / "answers_blind.jsonl"))
    assert metrics["image_sensitivity"]["n_compared"] == len(busi_records)
    assert set(metrics["baselines"]) == {"blind (blank images)", "majority per question type"}
    assert metrics["baselines"]["majority per question type"]["closed_accuracy"] > 0
    saved = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert saved["overall"]["n"] == len(busi_records)
    assert "baseline: blind (blank images)" in (tmp_path / "metrics.md").read_text(encoding="utf-8")


def test_a_late_shard_shares_out_the_same_records_as_an_early_one(tiny_model, busi_records, tmp_path):
    """Shard 0 finishes writing before shard 1 has even looked: without the wait, shard 1 would
    count shard 0's fresh answers as done, share out a shorter list and leave records out."""
    import threading
    import time

    from ultra.eval.generate import Shard, join_parts

    answerer = Answerer(*tiny_model, allow_untrained=True)
    path = tmp_path / "answers.jsonl"
    barrier = threading.Barrier(2, timeout=120)
    shards = [Shard(index, 2, barrier.wait) for index in range(2)]
    errors: list[BaseException] = []

    def run(shard: Shard, delay: float) -> None:
        try:
            time.sleep(delay)
            generate_answers_file(answerer, busi_records, path, batch_size=2, max_new_tokens=2, shard=shard)
        except BaseException as error:  # surfaced below with the thread's own error
            errors.append(error)

    threads = [threading.Thread(target=run, args=(shards[0], 0.0)), threading.Thread(target=run, args=(shards[1], 1.0))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors
    assert join_parts(path) == len(busi_records)
    assert sorted(_ids(path)) == sorted(record.id for record in busi_records)
