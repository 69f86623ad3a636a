"""Two-stage QA generation (data_zh.qagen).

No instruction-following LLM weights exist on the test machines, so the success path replays
replies written by hand (tests/fixtures/qagen/replay_responses.json) — through the replay backend
and through a real HTTP server. The failure paths (malformed JSON, a timeout, a 4xx) drive the
OpenAI-compatible backend over real HTTP twice: against ``ultra serve`` running the embedded tiny
model (which writes Chinese, not JSON), and against a small scripted server on 127.0.0.1 built here
with the standard library, which also counts the retries; the local backend runs a real, randomly
initialised transformers model.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from data_zh import read_records, write_records
from data_zh.builders import build_busi_instructions
from data_zh.qagen import (
    BACKENDS,
    OpenAIBackend,
    ReplayBackend,
    TransformersBackend,
    backend_from_spec,
    check_support,
    generate_qa,
    log_path_for,
    read_sources,
)
from tests.chat_server import chat_server, completion

FIXTURES = Path(__file__).parent / "fixtures" / "qagen"
REPLAY = FIXTURES / "replay_responses.json"
IMPRESSIONS = ("乳腺内见局灶性病灶，倾向良性。", "乳腺内见局灶性病灶，倾向恶性。")


@pytest.fixture(scope="module")
def inputs(shared_data: Path, tmp_path_factory) -> Path:
    """The hand-written transcript plus one BUSI impression record per fixture text (real builder output)."""
    reports = [r for r in build_busi_instructions(shared_data / "busi", "val") if r.task == "report"]
    chosen = [next(r for r in reports if r.answer == text) for text in IMPRESSIONS]
    path = tmp_path_factory.mktemp("qagen") / "inputs.jsonl"
    write_records(chosen, path)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write((FIXTURES / "cholecystectomy_transcript.jsonl").read_text(encoding="utf-8"))
    return path


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in log_path_for(out).read_text(encoding="utf-8").splitlines()]


def test_guard_drops_answers_their_fact_does_not_support() -> None:
    fact = "用施夹器在胆囊管近端放置两枚钛夹，远端放置一枚钛夹"
    assert check_support("近端放了几枚钛夹？", "两枚钛夹", fact).kept
    assert check_support("近端是否放置了钛夹？", "是", fact).kept
    unsupported = check_support("用什么离断胆囊管？", "超声刀", fact)
    assert not unsupported.kept and "超声" in unsupported.reason
    wrong_number = check_support("远端放了几枚钛夹？", "3枚", fact)
    assert not wrong_number.kept and "3" in wrong_number.reason
    off_topic = check_support("肝脏是否出血？", "是", fact)
    assert not off_topic.kept and "question" in off_topic.reason


def _check_replayed_output(out: Path) -> None:
    records = read_records(out)
    answers = Counter(r.extra["qagen"]["input_id"] for r in records)
    assert sorted(answers.values()) == [1, 2, 6], answers
    pairs = [(r.question, r.answer) for r in records]
    assert len(set(pairs)) == len(pairs), "duplicate pairs written"
    for record in records:
        provenance = record.extra["qagen"]
        cited = getattr(record.reasoning, provenance["fact_kind"])[provenance["fact_index"]]
        assert record.extra["fact"] == cited
        assert check_support(record.question, record.answer, cited).kept
        if record.source == "busi":
            assert record.media.images and record.conversations[0].content.startswith("<image>\n")
            assert record.task == "open_vqa"
        else:
            assert record.task == "text_instruction" and record.licence.startswith("CC0")
    assert {"超声刀", "3枚", "用纱布压迫止血", "两个分支", "2.3厘米"} <= {
        dropped["answer"] for entry in _log(out) for dropped in entry.get("dropped", [])
    }
    assert not {"超声刀", "3枚", "用纱布压迫止血", "两个分支", "2.3厘米"} & {a for _, a in pairs}


def test_replayed_replies_give_guarded_deduplicated_qa_and_a_rerun_resumes(
    inputs: Path, tmp_path: Path
) -> None:
    out = tmp_path / "qa.jsonl"
    sources = read_sources(inputs)
    assert len(sources) == 3
    report = generate_qa(sources, ReplayBackend.from_file(REPLAY), out, show_progress=False)
    assert (report.done, report.kept, report.dropped, report.duplicates, report.failed) == (3, 9, 6, 2, [])
    _check_replayed_output(out)
    first = out.read_text(encoding="utf-8")

    again = generate_qa(sources, ReplayBackend.from_file(REPLAY), out, show_progress=False)
    assert (again.skipped, again.done, again.kept) == (3, 0, 0)
    assert out.read_text(encoding="utf-8") == first

    # cut off after the last input's records were written but before its log line
    log = log_path_for(out)
    log.write_text("".join(log.read_text(encoding="utf-8").splitlines(keepends=True)[:-1]), encoding="utf-8")
    resumed = generate_qa(sources, ReplayBackend.from_file(REPLAY), out, show_progress=False)
    assert (resumed.skipped, resumed.done) == (2, 1)
    assert out.read_text(encoding="utf-8") == first
    assert len(_log(out)) == 3


@pytest.fixture
def openai_server() -> Iterator[tuple[str, Counter]]:
    """An OpenAI-style /chat/completions server on 127.0.0.1; the request's model picks its behaviour:
    replay (the fixture replies), malformed (a reply that is not JSON), garbled (an HTTP body that is
    not JSON), slow (answers after 1.5 s), reject (HTTP 400)."""
    replay = ReplayBackend.from_file(REPLAY)
    calls: Counter = Counter()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            model = request["model"]
            calls[model] += 1
            if self.path != "/v1/chat/completions" or model == "reject":
                self._send(400, b'{"error": {"message": "unknown model"}}')
                return
            if model == "garbled":
                self._send(200, b"<html>upstream error</html>")
                return
            if model == "slow":
                time.sleep(1.5)
            content = "事实如下：{observations: [胆囊" if model == "malformed" else ""
            if model in ("replay", "slow"):
                content = replay.complete(request["messages"][-1]["content"])
            body = {
                "object": "chat.completion",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
            }
            self._send(200, json.dumps(body, ensure_ascii=False).encode("utf-8"))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1", calls
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("model", "requests_per_input", "reason"),
    [
        ("malformed", 3, "invalid Facts JSON"),
        ("garbled", 3, "not a chat completion"),
        ("slow", 3, "no reply within"),
        ("reject", 1, "HTTP 400"),
    ],
)
def test_http_failures_are_recorded_and_a_rerun_retries_them(
    inputs: Path, tmp_path: Path, openai_server, model: str, requests_per_input: int, reason: str
) -> None:
    url, calls = openai_server
    out = tmp_path / "qa.jsonl"
    sources = read_sources(inputs)[2:]  # the transcript
    backend = OpenAIBackend(url, model=model, timeout_s=0.3)
    report = generate_qa(sources, backend, out, max_attempts=3, show_progress=False)
    assert report.done == 0 and [input_id for input_id, _ in report.failed] == ["lc-calot-triangle"]
    assert reason in report.failed[0][1], report.failed[0][1]
    assert calls[model] == requests_per_input  # 4xx is not asked again; the rest up to max_attempts
    assert not out.exists() or out.read_text(encoding="utf-8") == ""
    assert _log(out)[0]["status"] == "failed"

    retried = generate_qa(sources, OpenAIBackend(url, model="replay"), out, show_progress=False)
    assert (retried.done, retried.kept) == (1, 6)
    assert [entry["status"] for entry in _log(out)] == ["failed", "done"]


def test_the_http_backend_gives_what_the_replay_gives(inputs: Path, tmp_path: Path, openai_server) -> None:
    url, _ = openai_server
    report = generate_qa(
        read_sources(inputs), OpenAIBackend(url, model="replay"), tmp_path / "qa.jsonl", show_progress=False
    )
    assert (report.done, report.kept, report.dropped, report.duplicates) == (3, 9, 6, 2)
    _check_replayed_output(tmp_path / "qa.jsonl")


def test_local_transformers_model_that_writes_no_json_is_a_recorded_failure(tmp_path: Path) -> None:
    """A real (random, tiny) causal LM with the embedded model's tokenizer: its text is no JSON."""
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from ultra.resources import embedded_model_dir

    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_dir()))
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        eos_token_id=tokenizer.eos_token_id,
    )
    Qwen2ForCausalLM(config).save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    backend = TransformersBackend(tmp_path / "lm", max_new_tokens=8)
    assert isinstance(backend.complete("你好"), str)

    sources = read_sources(FIXTURES / "cholecystectomy_transcript.jsonl")
    report = generate_qa(sources, backend, tmp_path / "qa.jsonl", max_attempts=2, show_progress=False)
    assert report.done == 0 and len(report.failed) == 1
    assert report.failed[0][1].count("invalid Facts JSON") == 2


def test_cli_qagen_runs_resumes_and_names_a_bad_backend(inputs: Path, tmp_path: Path) -> None:
    from ultra.cli.main import app

    runner = CliRunner()
    out = tmp_path / "qa.jsonl"
    args = ["data", "qagen", str(inputs), str(out), "--backend", f"replay:{REPLAY}"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "3 input(s) done" in first.output and "9 QA pair(s) kept" in first.output
    assert len(read_records(out)) == 9
    second = runner.invoke(app, args)
    assert "3 already done" in second.output and len(read_records(out)) == 9

    bad = runner.invoke(app, ["data", "qagen", str(inputs), str(out), "--backend", "gpt:somewhere"])
    output = " ".join(bad.output.split())
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert "unknown QA backend 'gpt'; known: local, openai, replay" in output


@pytest.fixture(scope="module")
def ultra_serve(tmp_path_factory) -> Iterator[str]:
    """``ultra serve`` with the embedded tiny model on a free loopback port."""
    from tests.servers import free_port, running

    port = free_port()
    log = tmp_path_factory.mktemp("qagen-serve") / "server.log"
    with running(["serve", "--port", str(port)], f"http://127.0.0.1:{port}/health", log):
        yield f"http://127.0.0.1:{port}/v1"


@pytest.mark.parametrize(
    ("model", "timeout_s", "reason"),
    [
        (None, 120.0, "invalid Facts JSON"),  # the tiny model answers in Chinese prose
        ("no-such-model", 120.0, "HTTP 404"),
        (None, 0.001, "no reply within"),
    ],
)
def test_ultra_serve_failures_are_recorded_never_raised(
    inputs: Path, tmp_path: Path, ultra_serve: str, model: str | None, timeout_s: float, reason: str
) -> None:
    import httpx

    served = model or httpx.get(ultra_serve + "/models", timeout=30).json()["data"][0]["id"]
    backend = OpenAIBackend(ultra_serve, model=served, timeout_s=timeout_s, max_tokens=16)
    out = tmp_path / "qa.jsonl"
    report = generate_qa(read_sources(inputs)[2:], backend, out, max_attempts=2, show_progress=False)
    assert report.done == 0 and [input_id for input_id, _ in report.failed] == ["lc-calot-triangle"]
    assert reason in report.failed[0][1], report.failed[0][1]
    assert _log(out)[0]["status"] == "failed"


@pytest.mark.parametrize("kind", BACKENDS.names())
def test_every_backend_kind_builds_from_its_spec_and_the_http_one_talks(kind: str, tmp_path: Path) -> None:
    """Each ``--backend`` kind as the CLI builds it: the HTTP one asks a real local server, the
    replay one answers from its file, the local one names its folder (it loads on first use)."""
    recorded = json.loads(REPLAY.read_text(encoding="utf-8"))[0]

    def reversed_prompt(path: str, headers: dict, body: dict) -> tuple[int, str]:
        return 200, completion(body["messages"][0]["content"][::-1])

    with chat_server(reversed_prompt) as (url, bodies):
        target = {"openai": url, "replay": str(REPLAY), "local": str(tmp_path / "lm")}[kind]
        backend = backend_from_spec(f"{kind}:{target}", model="m", api_key="k", timeout_s=5)
        assert backend.name.startswith(f"{kind}:")
        if kind == "openai":
            assert backend.complete("你好，世界") == "界世，好你"
            sent = {"model": "m", "messages": [{"role": "user", "content": "你好，世界"}]}
            assert bodies == [{**sent, "max_tokens": 1024, "temperature": 0.2}]
        elif kind == "replay":
            assert backend.complete(f"…{recorded['match']}…") == recorded["response"]
        else:
            assert isinstance(backend, TransformersBackend) and str(backend.path) == target


def test_a_backend_spec_without_a_target_or_with_an_unknown_kind_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"backend 'openai': openai needs a target"):
        backend_from_spec("openai")
    with pytest.raises(ValueError, match=r"backend 'gpt:x': unknown QA backend 'gpt'; known: local, openai, replay"):
        backend_from_spec("gpt:x")
