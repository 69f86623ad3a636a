"""Question noise: seeded character edits of training questions that never touch answers or images."""

from __future__ import annotations

import random

import pytest

from data_zh.builders.question_noise import character_pool, noisy_text, with_question_noise
from data_zh.schema import IMAGE_PLACEHOLDER, VIDEO_PLACEHOLDER, Media, Record, Turn, qa_turns


def _records(n: int = 400) -> list[Record]:
    questions = ("图像中是否可见病灶？", "该病灶是良性还是恶性？", "这张超声图像的检查部位是哪里？")
    return [
        Record(
            id=f"r{index}",
            source="test",
            licence="CC0",
            specialty="breast",
            modality="US",
            language="zh",
            media=Media(root="/data", images=[f"{index}-{k}.png" for k in range(1 + index % 2)]),
            conversations=qa_turns(questions[index % 3], "是", n_images=1 + index % 2),
            task="closed_vqa",
            answer_type="closed",
        )
        for index in range(n)
    ]


def test_noise_edits_a_share_of_questions_and_keeps_answers_and_placeholders():
    records = _records()
    noisy = with_question_noise(records, rate=0.2, share=0.5, seed=0)
    edited = [r for r in noisy if "question_noise" in r.extra]
    assert 0.4 < len(edited) / len(records) < 0.6
    changed = 0
    for before, after in zip(records, noisy, strict=True):
        assert after.id == before.id and after.conversations[1] == before.conversations[1]
        n_images = before.conversations[0].content.count(IMAGE_PLACEHOLDER)
        lines = after.conversations[0].content.split("\n")
        assert lines[:n_images] == [IMAGE_PLACEHOLDER] * n_images and IMAGE_PLACEHOLDER not in lines[-1]
        changed += after.conversations[0].content != before.conversations[0].content
    assert changed > 0.8 * len(edited)  # at 20% per character a 10-character question is rarely intact
    again = with_question_noise(records, rate=0.2, share=0.5, seed=0)
    assert [r.conversations for r in again] == [r.conversations for r in noisy]
    other = with_question_noise(records, rate=0.2, share=0.5, seed=1)
    assert [r.conversations for r in other] != [r.conversations for r in noisy]


def test_noise_draws_only_from_the_questions_characters():
    records = _records(30)
    pool = set(character_pool(records))
    assert "良" in pool and "是" in pool and "？" not in pool and "<" not in pool
    text = noisy_text("是否可见病灶", 1.0, sorted(pool), random.Random(0))
    assert text != "是否可见病灶" and set(text) <= pool
    assert all(noisy_text("病灶", 1.0, ["x"], random.Random(seed)) for seed in range(50))
    assert with_question_noise(records, rate=0.0, share=1.0) == records
    with pytest.raises(ValueError, match="must be in"):
        with_question_noise(records, rate=1.5, share=0.5)
    english = [r.derive(conversations=qa_turns("Is there a lesion?", "yes", n_images=1)) for r in records[:1]]
    with pytest.raises(ValueError, match="no ideograph"):
        with_question_noise(english, rate=0.1, share=1.0)


def test_placeholders_survive_wherever_they_stand():
    base = _records(1)[0]
    video = base.derive(
        id="video",
        media=Media(root="/data", video={"path": "clip.mp4"}),
        conversations=[
            Turn(role="user", content=f"{VIDEO_PLACEHOLDER}\n这段视频里可以看到哪些器械？"),
            Turn(role="assistant", content="抓钳"),
        ],
    )
    trailing = base.derive(
        id="trailing",
        conversations=[
            Turn(role="user", content=f"图像中是否可见病灶？\n{IMAGE_PLACEHOLDER}"),
            Turn(role="assistant", content="是"),
        ],
    )
    copies = [r.derive(id=f"{r.id}-{index}") for index in range(50) for r in (video, trailing)]
    for before, after in zip(copies, with_question_noise(copies, rate=0.5, share=1.0), strict=True):
        content = after.conversations[0].content
        if before.id.startswith("trailing"):
            assert content.endswith(f"\n{IMAGE_PLACEHOLDER}") and content.count(IMAGE_PLACEHOLDER) == 1
        else:
            assert content.startswith(f"{VIDEO_PLACEHOLDER}\n") and content.count(VIDEO_PLACEHOLDER) == 1
