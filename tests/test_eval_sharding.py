"""``ultra eval generate`` under ``accelerate launch``: two CPU processes share the records and
leave one answers file equal to a single-process run; leftover part files resume."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from data_zh.io import write_records
from ultra.eval.answers import read_answers
from ultra.resources import embedded_model_dir

pytestmark = pytest.mark.skipif(
    not (embedded_model_dir() / "model.safetensors").is_file(),
    reason="the embedded model is not in this checkout",
)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _generate(records_path, out, *launcher: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    args = ["-m", "ultra", "eval", "generate", "-d", str(records_path), "--split", "val"]
    args += ["-o", str(out), "--max-new-tokens", "8", "--device", "auto"]
    result = subprocess.run(
        [sys.executable, *launcher, *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_two_processes_write_one_answers_file_like_one_process(shared_data, tmp_path):
    from data_zh.builders import build_busi_vqa

    records = build_busi_vqa(shared_data / "busi", "val")[:9]
    records_path = tmp_path / "records.jsonl"
    write_records(records, records_path)
    single = tmp_path / "single.jsonl"
    _generate(records_path, single)

    sharded = tmp_path / "sharded.jsonl"
    # a killed earlier run left one process's part file with one answer: it counts as done
    first = read_answers(single)[0]
    (tmp_path / "sharded.jsonl.part0-of-2").write_text(json.dumps(first, ensure_ascii=False) + "\n", "utf-8")
    launch = [
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
    ]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port())]
    result = _generate(records_path, sharded, *launch)
    # the progress bars (labelled "[process k/2]") stay quiet: stderr is a pipe here
    assert "8 answered now" in " ".join(result.stdout.split())
    assert not list(tmp_path.glob("sharded.jsonl.part*"))
    rows = read_answers(sharded)
    assert sorted(row["id"] for row in rows) == sorted(record.id for record in records)
    by_id = {row["id"]: row["answer"] for row in read_answers(single)}
    assert {row["id"]: row["answer"] for row in rows} == by_id
