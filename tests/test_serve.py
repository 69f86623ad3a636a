"""``ultra serve`` as a real server on a loopback port, driven by the official ``openai`` client.

Answers are compared with the same request answered in-process by ``Answerer`` (greedy, fp32,
the embedded ``ultra-tiny-zh``), so the API adds nothing and loses nothing.
"""

from __future__ import annotations

import base64
import concurrent.futures
from pathlib import Path
from urllib.parse import unquote

import httpx
import numpy as np
import openai
import pytest

from tests.servers import REPO_ROOT, free_port, running
from ultra import RESEARCH_NOTICE
from ultra.answerer import Answerer, GenerationSettings, Request, Turn
from ultra.media import read_image

EXAMPLES = REPO_ROOT / "ultra" / "examples" / "busi"
MODEL = "ultra-tiny-zh"
KEY = "test-key"
MAX_IMAGES = 2
MAX_TOKENS = 24


def data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()


def image_part(path: Path) -> dict:
    return {"type": "image_url", "image_url": {"url": data_url(path)}}


def user(text: str, *images: Path) -> dict:
    return {"role": "user", "content": [{"type": "text", "text": text}, *(image_part(p) for p in images)]}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> str:
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "server.log"
    args = ["serve", "--port", str(port), "--max-batch", "16", "--batch-wait-ms", "50"]
    args += ["--max-images", str(MAX_IMAGES), "--api-key", KEY]
    with running(args, f"http://127.0.0.1:{port}/health", log):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server + "/v1", api_key=KEY, max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def answerer() -> Answerer:
    return Answerer.load()


def local_answer(answerer: Answerer, request: Request):
    return answerer.answer([request])[0]


def settings() -> GenerationSettings:
    return GenerationSettings(max_new_tokens=MAX_TOKENS)


def test_models_lists_the_embedded_model(client):
    assert [model.id for model in client.models.list().data] == [MODEL]


def test_plain_answer_equals_the_answerer_and_carries_the_notice(client, answerer):
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[user("该病灶是良性还是恶性？", EXAMPLES / "benign-1.png")],
        max_tokens=MAX_TOKENS,
        temperature=0,
    )
    completion = raw.parse()
    expected = local_answer(
        answerer,
        Request("该病灶是良性还是恶性？", [read_image(EXAMPLES / "benign-1.png")], settings=settings()),
    )
    assert completion.choices[0].message.content == expected.text
    assert completion.choices[0].finish_reason == expected.finish_reason
    assert completion.usage.prompt_tokens == expected.prompt_tokens
    assert completion.usage.completion_tokens == expected.completion_tokens
    assert completion.usage.total_tokens == expected.prompt_tokens + expected.completion_tokens
    assert unquote(raw.headers["x-research-notice"]) == RESEARCH_NOTICE
    assert completion.model_extra["notice"] == RESEARCH_NOTICE


def test_streamed_chunks_concatenate_to_the_plain_answer(client):
    messages = [user("请描述这张超声图像。", EXAMPLES / "malignant-1.png")]
    plain = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=MAX_TOKENS)
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=messages,
            max_tokens=MAX_TOKENS,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(pieces) == plain.choices[0].message.content
    assert len([p for p in pieces if p]) >= 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [plain.choices[0].finish_reason]
    assert chunks[0].model_extra["notice"] == RESEARCH_NOTICE
    assert chunks[-1].choices == [] and chunks[-1].usage == plain.usage


def test_length_limit_gives_finish_reason_length(client):
    completion = client.chat.completions.create(
        model=MODEL, messages=[user("请详细描述这张超声图像。", EXAMPLES / "normal-1.png")], max_tokens=1
    )
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage.completion_tokens == 1


def test_several_images_equal_the_answerer(client, answerer):
    paths = [EXAMPLES / "benign-2.png", EXAMPLES / "malignant-2.png"]
    completion = client.chat.completions.create(
        model=MODEL, messages=[user("这两张图像有什么不同？", *paths)], max_tokens=MAX_TOKENS
    )
    one = client.chat.completions.create(
        model=MODEL, messages=[user("这两张图像有什么不同？", paths[0])], max_tokens=MAX_TOKENS
    )
    expected = local_answer(
        answerer, Request("这两张图像有什么不同？", [read_image(p) for p in paths], settings=settings())
    )
    assert completion.choices[0].message.content == expected.text
    assert completion.usage.prompt_tokens == expected.prompt_tokens > one.usage.prompt_tokens


def test_multi_turn_history_with_images_equals_the_answerer(client, answerer):
    first, second = EXAMPLES / "benign-1.png", EXAMPLES / "normal-2.png"
    messages = [
        {"role": "system", "content": "你是超声科医生。"},
        user("这是什么检查？", first),
        {"role": "assistant", "content": "乳腺超声。"},
        user("那这一张呢？", second),
    ]
    completion = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=MAX_TOKENS)
    history = [
        Turn("system", "你是超声科医生。"),
        Turn("user", "这是什么检查？", [read_image(first)]),
        Turn("assistant", "乳腺超声。"),
    ]
    expected = local_answer(
        answerer, Request("那这一张呢？", [read_image(second)], history=history, settings=settings())
    )
    assert completion.choices[0].message.content == expected.text
    assert completion.usage.prompt_tokens == expected.prompt_tokens


def _error(server: str, body: dict | str, key: str = KEY) -> tuple[int, dict]:
    content = body if isinstance(body, str) else None
    response = httpx.post(
        server + "/v1/chat/completions",
        content=content,
        json=None if content is not None else body,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=60,
    )
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return response.status_code, error


def test_malformed_json_is_a_400(server):
    status, error = _error(server, '{"model": "ultra-tiny-zh", "messages": [')
    assert status == 400 and "not valid JSON" in error["message"]


def test_missing_messages_is_a_400(server):
    status, error = _error(server, {"model": MODEL})
    assert status == 400 and error["message"] == "missing required field: messages"


def test_unknown_model_is_a_404_through_the_client(client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "你好"}])
    assert caught.value.status_code == 404
    assert "gpt-4o" not in caught.value.body["message"]  # request fields are never echoed
    assert f"this server has {MODEL!r}" in caught.value.body["message"]
    assert caught.value.body["code"] == "model_not_found"


def test_undecodable_image_is_a_400(client):
    bad = "data:image/png;base64," + base64.b64encode(b"this is not an image").decode()
    message = {
        "role": "user",
        "content": [{"type": "text", "text": "看图"}, {"type": "image_url", "image_url": {"url": bad}}],
    }
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[message])
    body = caught.value.body
    assert body["param"] == "messages[0].content[1].image_url"
    assert "could not be read" in body["message"] and "not a readable image" in body["message"]


def test_http_image_url_is_refused(client):
    message = {
        "role": "user",
        "content": [
            {"type": "text", "text": "看图"},
            {"type": "image_url", "image_url": {"url": "https://example.org/a.png"}},
        ],
    }
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[message])
    assert "http(s) image URLs are not fetched" in caught.value.body["message"]
    assert caught.value.body["code"] == "image_url_not_supported"


def test_too_many_images_uses_vllms_wording(client):
    paths = [EXAMPLES / "benign-1.png", EXAMPLES / "benign-2.png", EXAMPLES / "normal-1.png"]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[user("比较这些图像", *paths)])
    assert caught.value.body["message"] == f"At most {MAX_IMAGES} image(s) may be provided in one prompt."


def test_prompt_too_long_is_a_400(client, answerer):
    question = "超声" * answerer.context_length
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}])
    assert caught.value.body["code"] == "context_length_exceeded"
    assert f"the model's context holds {answerer.context_length}" in caught.value.body["message"]


def test_wrong_api_key_is_a_401(server):
    status, error = _error(
        server, {"model": MODEL, "messages": [{"role": "user", "content": "你好"}]}, key="nope"
    )
    assert status == 401 and error["code"] == "invalid_api_key"


def test_concurrent_requests_are_batched_and_equal_their_single_answers(server, client):
    """16 requests at once (plus one too long, which must fail alone) give the answers each gets
    alone, and the batcher's counters show they shared generate calls."""
    paths = sorted(EXAMPLES.glob("*.png"))
    questions = ["该病灶是良性还是恶性？", "请描述这张超声图像。", "图像中是否有病灶？"]
    jobs = [(questions[i % 3], paths[i % len(paths)], 4 + i % 5 * 4) for i in range(16)]

    def ask(job):
        question, path, max_tokens = job
        return client.chat.completions.create(
            model=MODEL, messages=[user(question, path)], max_tokens=max_tokens
        )

    alone = [ask(job) for job in jobs]
    before = httpx.get(server + "/health").json()["batching"]
    too_long = {"role": "user", "content": "超声" * 100_000}
    with concurrent.futures.ThreadPoolExecutor(17) as pool:
        futures = [pool.submit(ask, job) for job in jobs]
        bad = pool.submit(client.chat.completions.create, model=MODEL, messages=[too_long])
        together = [future.result() for future in futures]
        with pytest.raises(openai.BadRequestError):
            bad.result()
    after = httpx.get(server + "/health").json()["batching"]
    for single, batched in zip(alone, together, strict=True):
        assert batched.choices[0].message.content == single.choices[0].message.content
        assert batched.choices[0].finish_reason == single.choices[0].finish_reason
        assert batched.usage == single.usage
    requests = after["requests"] - before["requests"]
    batches = after["batches"] - before["batches"]
    assert requests == 16
    assert batches <= 8, f"16 concurrent requests took {batches} generate calls"
    assert after["max_batch_size_seen"] >= 4


def test_batcher_waits_only_for_requests_still_being_read(answerer):
    """A lone request starts at once despite a long window; a request still being read when a
    batch would start joins it."""
    import time

    from ultra.serve import DynamicBatcher

    batcher = DynamicBatcher(answerer, max_batch=16, wait_ms=5000)
    request = Request("你好", settings=GenerationSettings(max_new_tokens=2))
    try:
        start = time.monotonic()
        with batcher.receiving() as submit:
            stream = submit(request).result(timeout=60)
        "".join(stream)
        stream.close()
        assert time.monotonic() - start < 4, "a lone request waited for the batch window"
        with batcher.receiving() as late:
            early = batcher.submit(request)
            time.sleep(0.3)
            joined = late(request)
        streams = [early.result(timeout=60), joined.result(timeout=60)]
        for stream in streams:
            "".join(stream)
            stream.close()
        assert batcher.stats()["batch_sizes"] == {"1": 1, "2": 1}
    finally:
        batcher.stop()


def test_candidates_come_back_with_the_answerers_probabilities(client, answerer):
    candidates = ["良性", "恶性", "未见明确病灶"]
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[user("该病灶是良性还是恶性？", EXAMPLES / "benign-1.png")],
        max_tokens=MAX_TOKENS,
        extra_body={"candidates": candidates},
    )
    scored = reply.choices[0].model_extra["candidates"]
    request = Request("该病灶是良性还是恶性？", [read_image(EXAMPLES / "benign-1.png")], settings=settings())
    local = answerer.choose(request, candidates)
    # float32 sums over the answer's tokens, in a batch of another shape: sqrt(eps) apart at most
    tolerance = float(np.finfo(np.float32).eps) ** 0.5
    assert [row["text"] for row in scored] == candidates
    assert [row["logprob"] for row in scored] == pytest.approx(list(local.log_likelihoods), abs=tolerance)
    assert [row["probability"] for row in scored] == pytest.approx(list(local.probabilities), abs=tolerance)
    assert reply.choices[0].message.content == local_answer(answerer, request).text


def test_choose_names_a_candidate_set_in_the_questions_language(client):
    for question, expected in (("图中是否可见病灶？", ["是", "否"]), ("Is there a lesion?", ["yes", "no"])):
        reply = client.chat.completions.create(
            model=MODEL,
            messages=[user(question, EXAMPLES / "normal-1.png")],
            max_tokens=4,
            extra_body={"choose": "lesion"},
        )
        scored = reply.choices[0].model_extra["candidates"]
        assert [row["text"] for row in scored] == expected
        assert sum(row["probability"] for row in scored) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"candidates": []}, "at least one candidate"),
        ({"candidates": ["秘密答案", ""]}, "candidate 1 must be a non-empty string"),
        ({"candidates": [f"秘密答案{i}" for i in range(17)]}, "at most 16"),
        ({"candidates": ["秘密答案", "秘密答案"]}, "candidate 1 repeats candidate 0"),
        ({"candidates": ["是"], "choose": "lesion"}, "not both"),
        ({"choose": "秘密答案"}, "choose must be one of"),
        ({"candidates": ["是", "否"], "stream": True}, "not scored in streamed answers"),
    ],
)
def test_bad_candidates_are_a_400_that_quotes_nothing(server, extra, reason):
    body = {"model": MODEL, "messages": [{"role": "user", "content": "秘密问题"}], **extra}
    status, error = _error(server, body)
    assert status == 400 and reason in error["message"], error
    assert "秘密" not in error["message"]
