"""LoRA (``ultra.model.lora``): adapter save/load on a fresh base, merge to a plain checkpoint,
one load_model for all; the adapter carries the trained vision weights and BatchNorm statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.numerics import assert_close
from ultra.model import (
    AdapterError,
    LoraSettings,
    UltraForConditionalGeneration,
    add_lora,
    load_model,
    save_adapter,
    save_checkpoint,
    user_message,
)
from ultra.train import apply_trainable

TRAINED = ["*lora_*", "model.vision_tower.projectors.*", "model.vision_tower.encoders.0.*"]


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
    peft_model = add_lora(base, LoraSettings(r=4, alpha=8, dropout=0.0))
    assert peft_model is base and type(base) is UltraForConditionalGeneration  # in place, names kept
    apply_trainable(peft_model, TRAINED)

    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert any("lora_A" in name for name in trainable) and any("projectors" in name for name in trainable)
    assert not any("embed_tokens" in name or "mlp.up_proj.base_layer" in name for name in trainable)
    assert not any("lora_" in name for name in trainable if "vision_tower" in name)
    norms = {
        name: module
        for name, module in peft_model.vision_tower.encoders[0].named_modules()
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
    }
    assert norms, "the tiny CNN has BatchNorm layers whose statistics the adapter must carry"
    statistics = {name: module.running_mean.clone() for name, module in norms.items()}

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
    assert any(not torch.equal(statistics[name], norms[name].running_mean) for name in norms)

    adapter_dir = save_adapter(peft_model, tmp_path / "adapter")
    assert {p.suffix for p in adapter_dir.iterdir() if p.is_file()} <= {".safetensors", ".json", ".md"}
    assert (adapter_dir / "adapter_config.json").is_file()
    assert (adapter_dir / "adapter_model.safetensors").is_file()

    batch = processor(["右乳低回声结节，边界不清？", "检查部位？"], [_images(2, 5), []])
    with torch.no_grad():
        trained_logits = peft_model(**batch).logits
        base_logits = load_model(base_dir)[0](**batch).logits
    assert not torch.allclose(trained_logits, base_logits, atol=1e-3)  # the adapter changes the model

    reloaded, _ = load_model(base_dir, adapter=adapter_dir)
    assert type(reloaded) is UltraForConditionalGeneration
    with torch.no_grad():
        assert torch.equal(reloaded(**batch).logits, trained_logits)  # same weights, same ops: identical
    assert torch.equal(_generate(reloaded, batch), _generate(peft_model, batch))

    merged, _ = load_model(base_dir, adapter=adapter_dir, merge=True)
    assert type(merged) is UltraForConditionalGeneration
    assert not any("lora_" in key for key in merged.state_dict())
    with torch.no_grad():
        merged_logits = merged(**batch).logits
    # merged weights fold B@A into W: float32 rounding once per layer
    assert_close(
        merged_logits, trained_logits, stages=merged.config.text_config.num_hidden_layers, name="merged"
    )

    plain_dir = save_checkpoint(merged, processor, tmp_path / "merged")
    plain, _ = load_model(plain_dir)
    with torch.no_grad():
        assert torch.equal(plain(**batch).logits, merged_logits)


def test_adapter_for_another_model_is_refused_by_name(tiny_model, tmp_path):
    """Strict loading: an adapter with a LoRA matrix the model lacks is an error, never half-loaded."""
    from safetensors.torch import load_file, save_file

    model, processor = tiny_model
    base_dir = save_checkpoint(model, processor, tmp_path / "base")
    base, _ = load_model(base_dir)
    adapter_dir = save_adapter(add_lora(base, LoraSettings(r=2, alpha=4)), tmp_path / "adapter")
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    name, value = next(iter(weights.items()))
    weights[name.replace("layers.0.", "layers.7.")] = value.clone()
    save_file(weights, str(adapter_dir / "adapter_model.safetensors"))
    with pytest.raises(AdapterError, match="layers.7"):
        load_model(base_dir, adapter=adapter_dir)
