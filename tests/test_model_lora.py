"""LoRA: adapter save/load on a fresh base, merge_and_unload to a plain checkpoint, one load_model for all."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from tests.numerics import assert_close
from ultra.model import (
    LoraSettings,
    UltraForConditionalGeneration,
    apply_lora,
    load_model,
    save_adapter,
    save_checkpoint,
    user_message,
)


def _images(count: int, seed: int) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 255, (36, 44, 3), dtype=np.uint8)) for _ in range(count)]


def _generate(model, batch) -> torch.Tensor:
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=6, do_sample=False, pad_token_id=0)
    return out[:, batch["input_ids"].shape[1] :]


def test_adapter_reload_and_merge_match_the_trained_lora_model(tiny_model, tmp_path):
    model, processor = tiny_model
    base_dir = save_checkpoint(model, processor, tmp_path / "base")
    base, _ = load_model(base_dir)
    peft_model = apply_lora(base, LoraSettings(r=4, alpha=8, dropout=0.0))

    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert any("lora_A" in name for name in trainable) and any("projectors" in name for name in trainable)
    assert not any("embed_tokens" in name or "mlp.up_proj.base_layer" in name for name in trainable)

    train_batch = processor.collate(
        [
            processor.encode_example(
                [user_message("是否可见病灶？", 1), {"role": "assistant", "content": "可见低回声结节"}],
                _images(1, 0),
            ),
            processor.encode_example(
                [user_message("良性还是恶性？", 2), {"role": "assistant", "content": "恶性"}], _images(2, 1)
            ),
        ]
    )
    peft_model.train()
    optimizer = torch.optim.AdamW([p for p in peft_model.parameters() if p.requires_grad], lr=2e-2)
    for _ in range(4):
        optimizer.zero_grad()
        peft_model(**train_batch).loss.backward()
        optimizer.step()
    peft_model.eval()

    adapter_dir = save_adapter(peft_model, tmp_path / "adapter")
    assert {p.suffix for p in adapter_dir.iterdir() if p.is_file()} <= {".safetensors", ".json", ".md"}

    batch = processor(["右乳低回声结节，边界不清？", "检查部位？"], [_images(2, 5), []])
    with torch.no_grad():
        trained_logits = peft_model(**batch).logits
        base_logits = load_model(base_dir)[0](**batch).logits
    assert not torch.allclose(trained_logits, base_logits, atol=1e-3)  # the adapter changes the model

    reloaded, _ = load_model(base_dir, adapter=adapter_dir)
    with torch.no_grad():
        assert_close(reloaded(**batch).logits, trained_logits)
    assert torch.equal(_generate(reloaded, batch), _generate(peft_model, batch))

    merged, _ = load_model(base_dir, adapter=adapter_dir, merge=True)
    assert type(merged) is UltraForConditionalGeneration
    assert not any("lora_" in key for key in merged.state_dict())
    with torch.no_grad():
        merged_logits = merged(**batch).logits
    # merged weights sum W + BA once per layer instead of adding the two products
    assert_close(merged_logits, trained_logits, stages=merged.config.text_config.num_hidden_layers)

    plain_dir = save_checkpoint(merged, processor, tmp_path / "merged")
    plain, _ = load_model(plain_dir)
    with torch.no_grad():
        assert torch.equal(plain(**batch).logits, merged_logits)
