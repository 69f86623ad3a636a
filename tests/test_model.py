"""The vision-language model: config, tokenizer, processor, forward/backward, save/load, token accounting."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from PIL import Image

from tests.numerics import assert_close
from ultra.model import (
    IGNORE_INDEX,
    UltraConfig,
    UltraForConditionalGeneration,
    WeightsNotFoundError,
    build_model,
    bundled_tokenizer_dir,
    chat_messages,
    get_preset,
    list_presets,
    load_model,
    save_checkpoint,
    train_tokenizer,
    user_message,
)
from ultra.model.tokenizer import IM_END, IMAGE_TOKEN, SPECIAL_TOKENS, VIDEO_TOKEN, training_corpus

MEDICAL_TEXT = "右乳低回声结节，边界不清？"


def make_images(count: int, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (40 + 3 * i, 50, 3), dtype=np.uint8)) for i in range(count)]


def test_bundled_tokenizer_round_trips_chinese_medical_text():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_tokenizer_dir()))
    for text in (MEDICAL_TEXT, "甲状腺右叶见一 0.8cm×0.6cm 低回声，BI-RADS 4a 类。", "罕见字𠀀與表情😀"):
        ids = tokenizer.encode(text, add_special_tokens=False)
        assert tokenizer.decode(ids) == text
    ids = tokenizer.encode(MEDICAL_TEXT, add_special_tokens=False)
    pieces = [tokenizer.decode([i]) for i in ids]
    assert "，" in pieces and "？" in pieces  # full-width punctuation kept (no NFKC) and one token each
    assert len(ids) <= 10  # words merged, not byte by byte
    for token in SPECIAL_TOKENS:
        assert len(tokenizer.encode(token, add_special_tokens=False)) == 1
    assert tokenizer.eos_token == IM_END


def test_train_tokenizer_builds_a_byte_level_bpe_with_special_tokens():
    tokenizer = train_tokenizer(training_corpus(slake_root=None, jieba_limit=3000), vocab_size=700)
    assert len(tokenizer) == 700
    assert [tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    unseen = "龘靐齉 ✓"
    assert tokenizer.decode(tokenizer.encode(unseen, add_special_tokens=False)) == unseen


def test_presets_registry_and_tiny_zh_size():
    assert {"tiny-zh", "small-zh", "base-zh", "debug-tiny"} <= set(list_presets())
    with pytest.raises(KeyError, match="unknown model preset 'nope'"):
        get_preset("nope")
    model, _ = build_model("tiny-zh", pretrained=False)
    fp16_megabytes = sum(p.numel() for p in model.parameters()) * 2 / 1e6
    assert fp16_megabytes < 20
    assert model.config.tokens_per_image == 16
    assert model.config.text_config.num_hidden_layers == 4


def test_hub_preset_offline_error_names_every_download(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsNotFoundError) as error:
        load_model("small-zh")
    message = str(error.value)
    assert "Qwen/Qwen2.5-0.5B-Instruct" in message
    assert "timm/vit_large_patch14_clip_336.openai" in message and "timm/samvit_base_patch16.sa1b" in message
    assert "huggingface" in message


def test_config_rejects_inconsistent_fields(tiny_model):
    model, _ = tiny_model
    data = model.config.to_dict()
    data["vision"] = {**data["vision"], "hidden_size": 48}
    with pytest.raises(
        ValueError, match=r"vision.hidden_size \(48\) must equal text_config.hidden_size \(32\)"
    ):
        UltraConfig(**{k: v for k, v in data.items() if k not in ("model_type", "transformers_version")})
    bad = copy.deepcopy(model.config)
    bad.tokens_per_image = 5
    with pytest.raises(ValueError, match=r"tokens_per_image \(5\) differs from the fusion's 4"):
        UltraForConditionalGeneration(bad)


def test_vision_is_a_typed_fusion_config_validated_with_the_config(tiny_model, tmp_path):
    from fusion import FusionConfig

    model, _ = tiny_model
    assert isinstance(model.config.vision, FusionConfig)
    data = model.config.to_dict()
    assert data["vision"] == model.config.vision.model_dump(mode="json")
    kwargs = {k: v for k, v in data.items() if k not in ("model_type", "transformers_version")}
    assert UltraConfig(**kwargs).vision == model.config.vision
    with pytest.raises(ValueError, match=r"UltraConfig.vision is not a valid fusion config: grid: .*positive"):
        UltraConfig(**{**kwargs, "vision": {**data["vision"], "grid": [0, 4]}})
    with pytest.raises(ValueError, match="UltraConfig needs `vision`"):
        UltraConfig(**{**kwargs, "vision": None})
    model.config.save_pretrained(tmp_path)
    assert UltraConfig.from_pretrained(tmp_path).vision == model.config.vision


def test_labels_mask_prompt_and_image_positions(tiny_model):
    _, processor = tiny_model
    messages = [user_message("是否可见病灶？", 2), {"role": "assistant", "content": "可见低回声结节"}]
    example = processor.encode_example(messages, make_images(2))
    ids, labels = example["input_ids"], example["labels"]
    assert ids.shape == labels.shape
    image_positions = ids == processor.image_token_id
    assert int(image_positions.sum()) == 2 * processor.tokens_per_image
    assert bool((labels[image_positions] == IGNORE_INDEX).all())
    learned = labels[labels != IGNORE_INDEX]
    assert processor.tokenizer.decode(learned) == "可见低回声结节" + IM_END
    # the prompt (system prompt, question) is never a target
    first_target = int((labels != IGNORE_INDEX).nonzero()[0])
    assert processor.tokenizer.decode(ids[:first_target]).endswith("assistant\n")


def test_the_chat_is_laid_out_by_the_tokenizers_own_template(tiny_model):
    from ultra.model import UltraProcessor

    model, processor = tiny_model
    tokenizer = copy.deepcopy(processor.tokenizer)
    tokenizer.chat_template = (
        "{% for m in messages %}{{ '[' + m['role'] + ']\n' + m['content'] + '<|endoftext|>' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '[assistant]\n' }}{% endif %}"
    )
    other = UltraProcessor(tokenizer, processor.image_transforms, model.config)
    assert other.eos_token_id == tokenizer.convert_tokens_to_ids("<|endoftext|>")
    messages = chat_messages("是否可见病灶？", 1, answer="可见")
    ids, labels = other.tokenize_conversation(messages, add_generation_prompt=False)
    text = (
        f"[system]\n{model.config.system_prompt}<|endoftext|>"
        "[user]\n<image>\n是否可见病灶？<|endoftext|>[assistant]\n可见<|endoftext|>"
    )
    block = [other.image_token_id] * other.tokens_per_image
    before, after = text.split(IMAGE_TOKEN)
    encode = lambda part: tokenizer.encode(part, add_special_tokens=False)  # noqa: E731
    assert ids == encode(before) + block + encode(after)
    assert tokenizer.decode([label for label in labels if label != IGNORE_INDEX]) == "可见<|endoftext|>"
    prompt, _ = other.tokenize_conversation(messages[:-1], add_generation_prompt=True)
    assert tokenizer.decode(prompt[-len(encode("[assistant]\n")) :]) == "[assistant]\n"
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="has no chat template"):
        UltraProcessor(tokenizer, processor.image_transforms, model.config)


def test_chat_messages_place_the_placeholders_and_refuse_them_in_text():
    history = [("user", "是否可见病灶？", 2), ("assistant", "是", 0)]
    messages = chat_messages("良性还是恶性？", 1, video=True, history=history)
    assert messages == [
        {"role": "user", "content": "<image>\n<image>\n是否可见病灶？"},
        {"role": "assistant", "content": "是"},
        {"role": "user", "content": "<video>\n<image>\n良性还是恶性？"},
    ]
    with pytest.raises(ValueError, match="reserved placeholder <image>"):
        chat_messages("这是<image>吗？")
    with pytest.raises(ValueError, match="reserved placeholder <video>"):
        chat_messages("q", answer="<video>")


def test_placeholder_and_image_count_mismatch_is_reported(tiny_model):
    _, processor = tiny_model
    with pytest.raises(ValueError, match="has 2 <image> placeholders but 3 images were given"):
        processor.encode_example(
            [user_message("q", 2), {"role": "assistant", "content": "a"}], make_images(3)
        )


@pytest.mark.parametrize("count", [1, 3, 5])
def test_image_token_accounting_for_several_images(tiny_model, count):
    model, processor = tiny_model
    images = make_images(count)
    batch = processor([f"这 {count} 张图像是否可见病灶？"], [images])
    assert int((batch["input_ids"] == processor.image_token_id).sum()) == count * processor.tokens_per_image
    assert [p.shape[0] for p in batch["pixel_values"]] == [count] * len(batch["pixel_values"])
    with torch.no_grad():
        logits = model(**batch).logits
        # every image reaches the LLM: changing the last one changes the prediction
        changed = [p.clone() for p in batch["pixel_values"]]
        for p in changed:
            p[-1] = torch.randn_like(p[-1])
        other = model(**{**batch, "pixel_values": changed}).logits
    assert not torch.allclose(logits[:, -1], other[:, -1])
    # one image fewer than placeholders: a ValueError with both counts
    fewer = [p[:-1] for p in batch["pixel_values"]]
    expected = f"holds {count * processor.tokens_per_image} image tokens but the image input gives {(count - 1) * processor.tokens_per_image}"
    with pytest.raises(ValueError, match=expected):
        model(**{**batch, "pixel_values": fewer})


def test_text_only_and_video_inputs(tiny_model):
    model, processor = tiny_model
    frames = make_images(5, seed=3)
    batch = processor(["视频中可见哪些器械？", "只有文字的问题"], video_frames=[frames, None])
    assert int((batch["input_ids"] == processor.video_token_id).sum()) == processor.video_tokens
    assert batch["pixel_values_videos"][0].shape[0] == processor.video_num_frames
    assert "pixel_values" not in batch
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape
    assert torch.isfinite(logits).all()


def test_forward_backward_and_loss_decreases_over_20_steps(tiny_model):
    model, processor = tiny_model
    model = copy.deepcopy(model).train()
    examples = [
        processor.encode_example(
            [user_message("是否可见病灶？", 1), {"role": "assistant", "content": "是"}], make_images(1)
        ),
        processor.encode_example(
            [user_message("良性还是恶性？", 2), {"role": "assistant", "content": "恶性，边界不清"}],
            make_images(2, seed=1),
        ),
        processor.encode_example([user_message("检查部位？"), {"role": "assistant", "content": "乳腺"}]),
    ]
    batch = processor.collate(examples)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(20):
        optimizer.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    projector_grad = next(model.vision_tower.projectors.parameters()).grad
    assert projector_grad is not None and projector_grad.abs().sum() > 0
    assert losses[-1] < 0.5 * losses[0]


def test_save_pretrained_then_load_gives_identical_logits(tiny_model, tmp_path):
    model, processor = tiny_model
    save_checkpoint(model, processor, tmp_path / "ckpt")
    files = {path.name for path in (tmp_path / "ckpt").iterdir()}
    assert "model.safetensors" in files and not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
    loaded, loaded_processor = load_model(tmp_path / "ckpt")
    batch = processor(["右乳低回声结节，边界不清？"], [make_images(2)])
    assert torch.equal(
        batch["input_ids"], loaded_processor(["右乳低回声结节，边界不清？"], [make_images(2)])["input_ids"]
    )
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, loaded(**batch).logits)
    assert loaded.config.projectors_trained is False


def test_load_model_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a model folder nor a preset"):
        load_model(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsNotFoundError, match="not a model folder"):
        load_model(tmp_path / "empty")


def test_embedded_tiny_zh_loads_or_says_it_is_not_trained():
    from ultra.resources import embedded_model_dir

    if (embedded_model_dir() / "config.json").is_file():
        model, processor = load_model("tiny-zh")
        assert model.config.tokens_per_image == get_preset("tiny-zh").grid[0] * get_preset("tiny-zh").grid[1]
        assert (
            processor.tokenizer.decode(processor.tokenizer.encode(MEDICAL_TEXT, add_special_tokens=False))
            == MEDICAL_TEXT
        )
    else:
        with pytest.raises(WeightsNotFoundError, match="has not been trained yet"):
            load_model("tiny-zh")


def test_the_vision_tower_is_reached_through_one_property(tiny_model):
    from fusion import VisionFusion
    from ultra.train.supervision import find_vision_fusion

    model, _ = tiny_model
    assert isinstance(model.vision_tower, VisionFusion)
    assert [module for module in model.modules() if isinstance(module, VisionFusion)] == [model.vision_tower]
    assert find_vision_fusion(model) == ("model.vision_tower", model.vision_tower)
    with pytest.raises(ValueError, match="Linear has no vision_tower"):
        find_vision_fusion(torch.nn.Linear(2, 2))


def test_special_token_ids_match_config(tiny_model):
    model, processor = tiny_model
    assert processor.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN) == model.config.image_token_id
    assert processor.tokenizer.convert_tokens_to_ids(VIDEO_TOKEN) == model.config.video_token_id


def test_processor_can_cut_images_to_the_scan_region(tiny_model):
    from ultra.model import UltraProcessor

    model, processor = tiny_model
    config = copy.deepcopy(model.config)
    config.crop_scan_region = True
    cropping = UltraProcessor(processor.tokenizer, processor.image_transforms, config)
    frame = np.zeros((120, 160, 3), dtype=np.uint8)
    frame[30:90, 40:130] = np.random.default_rng(0).integers(60, 255, (60, 90, 3), dtype=np.uint8)
    image = Image.fromarray(frame)
    assert cropping.prepare_image(image).size == (90, 60)
    assert processor.prepare_image(image).size == (160, 120)
    assert not torch.equal(cropping.preprocess_images([image])[0], processor.preprocess_images([image])[0])


def test_video_block_is_fusion_video_encode_clip(tiny_model):
    from fusion.video import encode_clip, video_token_count

    model, processor = tiny_model
    frames = make_images(7, seed=4)
    assert processor.video_tokens == video_token_count(
        model.config.tokens_per_image, processor.video_num_frames
    )
    batch = processor(["视频中可见哪些器械？"], video_frames=[frames])
    with torch.no_grad():
        block = model.model.get_video_features(batch["pixel_values_videos"]).pooler_output[0]
        expected = encode_clip(model.vision_tower, frames, processor.video_num_frames)
    assert block.shape == (processor.video_tokens, model.config.text_config.hidden_size)
    assert_close(block, expected)
