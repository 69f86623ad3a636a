"""The model's generation under the front door's batching: left padding == one at a time, KV cache
on/off, blank images, stopping at <|im_end|>. (The ``Answerer`` itself: tests/test_answerer.py.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.numerics import assert_close
from ultra import blank_like
from ultra.answerer import Answerer, GenerationSettings, Request
from ultra.answerer.inputs import collate_requests, encode_request


def _images(count: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (30 + 7 * i, 40, 3), dtype=np.uint8)) for i in range(count)]


REQUESTS = [
    Request("检查部位是什么？"),
    Request("是否可见病灶？", _images(1, 1)),
    Request("两张图像中的结节边界是否清晰，是良性还是恶性？", _images(2, 2)),
    Request("右乳低回声结节，边界不清？", _images(1, 3)),
]


def prepare_batch(model, processor, requests, blank_images=False):
    if blank_images:
        requests = [Request(r.question, r.images, blank_images=True) for r in requests]
    encoded = [encode_request(model, processor, r) for r in requests]
    return collate_requests(model, processor, encoded, padding_side="left")


def generate_answers(model, processor, requests, batch_size=8, max_new_tokens=32):
    settings = GenerationSettings(max_new_tokens=max_new_tokens)
    requests = [Request(r.question, r.images, settings=settings) for r in requests]
    answers = Answerer(model, processor, allow_untrained=True).answer(requests, batch_size=batch_size)
    return [answer.text for answer in answers]


def _generate(model, processor, requests, **kwargs):
    batch = prepare_batch(model, processor, requests)
    with torch.no_grad():
        out = model.generate(
            **batch,
            max_new_tokens=5,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=processor.pad_token_id,
            **kwargs,
        )
    return out.sequences[:, batch["input_ids"].shape[1] :], torch.stack(out.logits, dim=1)


def _layers(model) -> int:
    """Each decoder layer sums in an order that depends on the batch shape: one rounding stage each."""
    return model.config.text_config.num_hidden_layers


def test_batched_left_padded_generation_equals_one_at_a_time(tiny_model):
    model, processor = tiny_model
    batch = prepare_batch(model, processor, REQUESTS)
    assert bool((batch["attention_mask"][:, -1] == 1).all())  # left padding: every prompt ends at the edge
    assert len(set(batch["attention_mask"].sum(dim=1).tolist())) > 1
    tokens, logits = _generate(model, processor, REQUESTS)
    for index, request in enumerate(REQUESTS):
        single_tokens, single_logits = _generate(model, processor, [request])
        assert torch.equal(tokens[index], single_tokens[0])
        assert_close(logits[index], single_logits[0], stages=_layers(model), name=f"request {index}")


def test_kv_cache_on_and_off_give_the_same_tokens(tiny_model):
    model, processor = tiny_model
    cached, cached_logits = _generate(model, processor, REQUESTS[1:3], use_cache=True)
    uncached, uncached_logits = _generate(model, processor, REQUESTS[1:3], use_cache=False)
    assert torch.equal(cached, uncached)
    assert_close(cached_logits, uncached_logits, stages=_layers(model))


def test_front_door_answer_equals_the_models_greedy_generate(tiny_model):
    model, processor = tiny_model
    batch = prepare_batch(model, processor, [REQUESTS[2]])
    with torch.no_grad():
        out = model.generate(
            **batch,
            max_new_tokens=6,
            do_sample=False,
            eos_token_id=processor.eos_token_id,
            pad_token_id=processor.pad_token_id,
        )
    expected = processor.tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert generate_answers(model, processor, [REQUESTS[2]], max_new_tokens=6) == [expected.strip()]


def test_blank_images_are_zero_after_normalisation_and_change_the_output(tiny_model):
    model, processor = tiny_model
    blank = prepare_batch(model, processor, REQUESTS[1:3], blank_images=True)
    seen = prepare_batch(model, processor, REQUESTS[1:3])
    assert all(bool((p == 0).all()) for p in blank["pixel_values"])
    assert torch.equal(blank["input_ids"], seen["input_ids"])  # same placeholders, only the pixels differ
    with torch.no_grad():
        assert not torch.allclose(model(**blank).logits[:, -1], model(**seen).logits[:, -1])
    image = _images(1, 9)[0]
    blanked = blank_like(image, model.vision_tower)
    assert blanked.size == image.size
    normalised = [transform([blanked]) for transform in processor.image_transforms]
    assert max(float(t.abs().max()) for t in normalised) < 0.01


def test_trained_tiny_zh_batched_answers_equal_one_at_a_time():
    from ultra.model import load_model
    from ultra.resources import embedded_model_dir

    if not (embedded_model_dir() / "config.json").is_file():
        pytest.skip("the embedded tiny-zh model is not trained yet")
    model, processor = load_model("tiny-zh")
    batched = generate_answers(model, processor, REQUESTS, batch_size=4, max_new_tokens=12)
    single = [generate_answers(model, processor, [r], batch_size=1, max_new_tokens=12)[0] for r in REQUESTS]
    assert batched == single


def test_generation_stops_at_eos(tiny_model):
    """A head that always prefers <|im_end|> ends every answer after one step, empty."""
    import copy

    model, processor = tiny_model
    model = copy.deepcopy(model)
    head = torch.nn.Linear(model.lm_head.in_features, model.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        head.bias[processor.eos_token_id] = 1e4
    model.lm_head = head
    batch = prepare_batch(model, processor, REQUESTS)
    with torch.no_grad():
        out = model.generate(
            **batch,
            max_new_tokens=8,
            do_sample=False,
            eos_token_id=processor.eos_token_id,
            pad_token_id=processor.pad_token_id,
        )
    assert out.shape[1] == batch["input_ids"].shape[1] + 1
    assert bool((out[:, -1] == processor.eos_token_id).all())
    assert generate_answers(model, processor, REQUESTS, max_new_tokens=8) == [""] * len(REQUESTS)
