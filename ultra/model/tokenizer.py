"""The offline Chinese tokenizer of the ``tiny-zh`` preset, and the chat special tokens.

Presets with hub weights use their LLM's own tokenizer; the tiny preset ships its own, trained here
without network access. It is byte-level BPE so that any character, even one never seen in training,
round-trips exactly; it never applies NFKC, so full-width punctuation (，？：) stays as written.
Training text is limited to what may ship with the embedded model: jieba's dictionary (MIT) and the
Chinese questions and answers of SLAKE's train/validation splits (CC BY 4.0), plus a short list of
ultrasound terms written for this project.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

from transformers import PreTrainedTokenizerFast

logger = logging.getLogger(__name__)

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
END_OF_TEXT = "<|endoftext|>"
IMAGE_TOKEN = "<image>"
VIDEO_TOKEN = "<video>"
SPECIAL_TOKENS = (END_OF_TEXT, IM_START, IM_END, IMAGE_TOKEN, VIDEO_TOKEN)

# ChatML, as used by Qwen2 chat models; the processor lays every chat out with the tokenizer's template.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)

ULTRASOUND_TERMS = (
    "超声 彩色多普勒 超声所见 超声提示 检查部位 乳腺 乳房 左乳 右乳 甲状腺 肝脏 胆囊 胰腺 脾脏 肾脏 膀胱 子宫 卵巢 "
    "前列腺 颈部 腋窝 淋巴结 低回声 高回声 等回声 无回声 混合回声 回声不均 结节 肿块 囊肿 囊性 实性 钙化 微钙化 "
    "边界清 边界不清 边界清晰 形态规则 形态不规则 纵横比 血流信号 后方回声增强 后方回声衰减 良性 恶性 正常 "
    "未见明显异常 可见病灶 是否可见病灶 良性还是恶性 建议随访 建议活检 BI-RADS 分类 大小约 mm cm 图像 图片 "
    "是 否 有 无 左侧 右侧 上方 下方 内侧 外侧 腹腔镜 胆囊切除 器械 视频 帧 仅供研究，非临床诊断"
)


FULL_WIDTH_PUNCTUATION = "，。？！：；、（）“”‘’《》【】～…—"


def _slake_texts(slake_root: Path) -> Iterator[str]:
    for name in ("train.json", "validate.json"):
        path = slake_root / name
        if not path.is_file():
            logger.warning("SLAKE file %s not found; training the tokenizer without it", path)
            continue
        for item in json.loads(path.read_text(encoding="utf-8")):
            if item.get("q_lang") == "zh":
                yield str(item["question"])
                yield str(item["answer"])


def _jieba_words(limit: int | None = None) -> Iterator[str]:
    import jieba

    dictionary = Path(jieba.__file__).resolve().parent / "dict.txt"
    with dictionary.open(encoding="utf-8") as handle:
        for index, line in enumerate(handle):
            if limit is not None and index >= limit:
                break
            word = line.split(" ", 1)[0].strip()
            if word:
                yield word


def training_corpus(slake_root: Path | None, jieba_limit: int | None = None) -> Iterator[str]:
    """Text the tokenizer learns from, all of it licensed to ship with the model."""
    yield ULTRASOUND_TERMS
    # Each mark alone and often enough that BPE gives it one token instead of three bytes.
    for _ in range(200):
        yield from FULL_WIDTH_PUNCTUATION
    yield from _jieba_words(jieba_limit)
    if slake_root is not None:
        yield from _slake_texts(slake_root)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 8000) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer with the ChatML special tokens registered."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=IM_END,
        pad_token=END_OF_TEXT,
        unk_token=None,
        additional_special_tokens=[IM_START, IMAGE_TOKEN, VIDEO_TOKEN],
        clean_up_tokenization_spaces=False,
        padding_side="left",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_tokenizer(
    output_dir: str | Path, slake_root: Path | None, vocab_size: int = 8000
) -> PreTrainedTokenizerFast:
    """Train the ``tiny-zh`` tokenizer and save it (tokenizer.json + tokenizer_config.json)."""
    tokenizer = train_tokenizer(training_corpus(slake_root), vocab_size=vocab_size)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(output_dir)
    logger.info("saved a %d-token tokenizer to %s", len(tokenizer), output_dir)
    return tokenizer


def add_multimodal_tokens(tokenizer: PreTrainedTokenizerFast) -> list[str]:
    """Register ``<image>``/``<video>`` on a hub tokenizer that lacks them; returns the ones added."""
    vocab = tokenizer.get_vocab()
    missing = [token for token in (IMAGE_TOKEN, VIDEO_TOKEN) if token not in vocab]
    if missing:
        tokenizer.add_special_tokens(
            {"additional_special_tokens": missing}, replace_extra_special_tokens=False
        )
    return missing


def bundled_tokenizer_dir() -> Path:
    """The committed ``tiny-zh`` tokenizer files: the ``tiny-zh`` preset loads them, and a model trained
    from it saves them beside its weights."""
    return Path(__file__).resolve().parent / "assets" / "tokenizer-tiny-zh"


def main() -> None:
    """Rebuild the committed tokenizer: ``python -m ultra.model.tokenizer --slake ../shared/data/slake``."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--slake", type=Path, default=None, help="folder with SLAKE train.json/validate.json")
    parser.add_argument("--out", type=Path, default=bundled_tokenizer_dir())
    parser.add_argument("--vocab-size", type=int, default=8000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    build_tiny_tokenizer(args.out, args.slake, vocab_size=args.vocab_size)


if __name__ == "__main__":
    main()
