"""The front door: streaming, batched streams, threads, finish reasons, stop strings, seeded
sampling, context limits, log-likelihoods, multi-turn chats, image weights."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from ultra.answerer import (
    Answerer,
    GenerationSettings,
    PromptTooLongError,
    Request,
    Turn,
)
from ultra.answerer.inputs import collate_requests, encode_request
from ultra.resources import embedded_model_dir, examples_dir

# Sums over many float32 terms: sqrt(eps) absorbs summation-order differences between CPUs.
FLOAT32_TOL = float(torch.finfo(torch.float32).eps) ** 0.5


def _images(count: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (36 + 5 * i, 44, 3), dtype=np.uint8)) for i in range(count)]


def _requests(max_new_tokens: int = 10) -> list[Request]:
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    return [
        Request("检查部位是什么？", settings=settings),
        Request("是否可见病灶？", _images(1, 1), settings=settings),
        Request("两张图像中的结节边界是否清晰？", _images(2, 2), settings=settings),
        Request("右乳低回声结节，边界不清？", _images(1, 3), settings=settings),
    ]


@pytest.fixture(scope="module")
def random_answerer(tiny_model):
    return Answerer(*tiny_model, allow_untrained=True)


@pytest.fixture(scope="module")
def embedded_answerer():
    if not (embedded_model_dir() / "model.safetensors").is_file():
        pytest.skip("the embedded tiny-zh model is not in this checkout")
    return Answerer.load("tiny-zh")


@pytest.fixture(scope="module")
def busi_examples() -> list[Image.Image]:
    return [Image.open(path).convert("RGB") for path in sorted((examples_dir() / "busi").glob("*.png"))]


def test_stream_pieces_join_to_exactly_the_answer(random_answerer):
    # a random model emits odd whitespace and partial characters: the settling logic must hold
    for request in _requests(max_new_tokens=12):
        answer = random_answerer.answer([request])[0]
        assert "".join(random_answerer.stream(request)) == answer.text


def test_stream_batch_gives_each_consumer_its_own_answer(random_answerer):
    requests = _requests(max_new_tokens=8)
    singles = [random_answerer.answer([request])[0] for request in requests]
    streams = random_answerer.stream_batch(requests)
    texts = [None] * len(streams)

    def consume(index: int) -> None:
        texts[index] = "".join(streams[index])

    workers = [threading.Thread(target=consume, args=(i,)) for i in range(len(streams))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert texts == [single.text for single in singles]
    assert [stream.answer for stream in streams] == singles


def test_eight_threads_get_exactly_the_single_thread_answers(embedded_answerer, busi_examples):
    questions = ["该病灶是良性还是恶性？", "是否可见病灶？", "这是什么检查？", "病灶位于哪个器官？"]
    requests = [
        Request(questions[i % 4], [busi_examples[i % len(busi_examples)]], settings=GenerationSettings(16))
        for i in range(8)
    ]
    expected = [embedded_answerer.answer([request])[0] for request in requests]
    got: list = [None] * 8
    barrier = threading.Barrier(8)

    def call(index: int) -> None:
        barrier.wait()
        got[index] = embedded_answerer.answer([requests[index]])[0]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert got == expected


def test_finish_reasons_token_counts_and_stop_strings(embedded_answerer, busi_examples):
    question, image = "该病灶是良性还是恶性？", busi_examples[0]
    free = embedded_answerer.answer([Request(question, [image])])[0]
    assert free.finish_reason == "stop" and free.text  # ended on <|im_end|>
    prompt_tokens = int(
        encode_request(
            embedded_answerer.model, embedded_answerer.processor, Request(question, [image])
        ).input_ids.shape[0]
    )
    assert free.prompt_tokens == prompt_tokens
    assert free.completion_tokens == len(embedded_answerer.processor.tokenizer.encode(free.text)) + 1
    short = Request(question, [image], settings=GenerationSettings(max_new_tokens=1))
    stopped = Request(question, [image], settings=GenerationSettings(stop=(free.text[-1],)))
    # different limits and stop strings share one batched generate, each applied to its own row
    cut, stop_cut, again = embedded_answerer.answer(
        [short, stopped, Request(question, [image])], batch_size=3
    )
    assert (cut.finish_reason, cut.completion_tokens) == ("length", 1)
    assert free.text.startswith(cut.text)
    assert stop_cut.finish_reason == "stop" and stop_cut.text == free.text[: free.text.index(free.text[-1])]
    assert again == free
    assert "".join(embedded_answerer.stream(stopped)) == stop_cut.text


def test_sampling_is_seeded_grouped_and_leaves_global_rng_alone(random_answerer):
    sampled = [
        Request("是否可见病灶？", _images(1, 4), settings=GenerationSettings(8, temperature=1.5, seed=seed))
        for seed in (3, 4)
    ]
    greedy = _requests(max_new_tokens=8)[:2]
    state = torch.get_rng_state()
    mixed = random_answerer.answer([greedy[0], sampled[0], greedy[1], sampled[1]], batch_size=4)
    assert torch.equal(state, torch.get_rng_state())
    assert mixed == [random_answerer.answer([r])[0] for r in (greedy[0], sampled[0], greedy[1], sampled[1])]
    many = [random_answerer.answer([sampled[0]])[0].text for _ in range(2)]
    assert many[0] == many[1]


def test_a_prompt_longer_than_the_context_is_a_typed_error(random_answerer):
    long_history = [Turn("user", "超声" * random_answerer.context_length), Turn("assistant", "好")]
    with pytest.raises(PromptTooLongError, match="context holds"):
        random_answerer.answer([Request("是否可见病灶？", history=long_history)])


def test_reserved_placeholders_in_text_are_refused(random_answerer):
    with pytest.raises(ValueError, match="reserved placeholder"):
        random_answerer.answer([Request("<image> 是否可见病灶？")])


def test_log_likelihood_scores_only_the_answer_tokens(random_answerer):
    model, processor = random_answerer.model, random_answerer.processor
    request = Request(
        "第二张图像中是否可见病灶？",
        _images(1, 6),
        history=[Turn("user", "第一张图像是什么部位？", _images(1, 5)), Turn("assistant", "乳腺")],
    )
    text = "可见低回声结节"
    scored = random_answerer.log_likelihood(request, text)
    text_ids = processor.tokenizer.encode(text, add_special_tokens=False)
    assert scored.tokens == len(text_ids)
    # by hand: the prompt, then the answer's tokens, each scored from the position before it
    prompt = encode_request(model, processor, request)
    batch = collate_requests(model, processor, [prompt], padding_side="left")
    ids = torch.cat([batch["input_ids"], torch.tensor([text_ids])], dim=1)
    with torch.no_grad():
        logits = (
            model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=batch["pixel_values"])
            .logits[0]
            .float()
        )
    start = prompt.input_ids.shape[0]
    log_probs = torch.log_softmax(logits[start - 1 : start - 1 + len(text_ids)], dim=-1)
    by_hand = log_probs.gather(-1, torch.tensor(text_ids).unsqueeze(-1)).sum()
    torch.testing.assert_close(torch.tensor(scored.total), by_hand, rtol=FLOAT32_TOL, atol=FLOAT32_TOL)
    # batched scoring equals one at a time; the history's image matters
    other = Request(
        request.question,
        request.images,
        history=[Turn("user", "第一张图像是什么部位？", _images(1, 9)), Turn("assistant", "乳腺")],
    )
    pairs = [(request, text), (other, text), (Request("是否可见病灶？"), "是")]
    batched = random_answerer.log_likelihoods(pairs, batch_size=3)
    singles = [random_answerer.log_likelihood(r, t) for r, t in pairs]
    torch.testing.assert_close(
        torch.tensor([b.total for b in batched]),
        torch.tensor([s.total for s in singles]),
        rtol=FLOAT32_TOL,
        atol=FLOAT32_TOL,
    )
    assert abs(batched[0].total - batched[1].total) > FLOAT32_TOL


def test_equal_image_weights_change_nothing_and_unequal_weights_do(embedded_answerer, busi_examples):
    images = [busi_examples[0], busi_examples[-1]]  # a benign lesion and a normal breast
    question = "该病灶是良性还是恶性？"
    plain = embedded_answerer.log_likelihood(Request(question, images), "良性")
    equal = embedded_answerer.log_likelihood(Request(question, images, image_weights=[0.5, 0.5]), "良性")
    skewed = embedded_answerer.log_likelihood(Request(question, images, image_weights=[0.9, 0.1]), "良性")
    torch.testing.assert_close(
        torch.tensor(equal.total), torch.tensor(plain.total), rtol=FLOAT32_TOL, atol=FLOAT32_TOL
    )
    assert abs(skewed.total - plain.total) > FLOAT32_TOL
    with pytest.raises(ValueError, match="2 images"):
        Request("q", images, image_weights=[1.0])


def test_blank_images_change_the_likelihood(random_answerer):
    image = _images(1, 8)
    seen = random_answerer.log_likelihood(Request("是否可见病灶？", image), "是")
    blind = random_answerer.log_likelihood(Request("是否可见病灶？", image, blank_images=True), "是")
    assert abs(seen.total - blind.total) > FLOAT32_TOL


def test_the_answerer_leaves_a_training_model_in_training_mode(tiny_model):
    model = copy.deepcopy(tiny_model[0]).train()
    Answerer(model, tiny_model[1], allow_untrained=True).answer([_requests(2)[1]])
    assert model.training
