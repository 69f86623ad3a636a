"""Every model preset builds an ``UltraConfig`` that validates (one test over the whole registry)."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from fusion.registry import UnknownEntryError
from ultra.model import UltraConfig, bundled_tokenizer_dir
from ultra.model.loading import build_config
from ultra.model.presets import PRESETS, get_preset


@pytest.fixture(scope="module")
def tokenizer():
    """The bundled tokenizer stands in for the hub LLMs' (it has the same multimodal tokens)."""
    return AutoTokenizer.from_pretrained(str(bundled_tokenizer_dir()))


@pytest.mark.parametrize("name", PRESETS.names())
def test_every_preset_builds_a_config_that_validates(name: str, tokenizer) -> None:
    preset = PRESETS[name]
    assert preset.name == name
    config = build_config(preset, tokenizer)
    assert config.vision.hidden_size == preset.text_config["hidden_size"]
    assert [spec.name for spec in config.vision.resolved_encoders()] == [spec.name for spec in preset.encoders]
    assert config.tokens_per_image >= preset.grid[0] * preset.grid[1]
    restored = UltraConfig.from_dict(config.to_dict())
    assert restored.vision == config.vision and restored.tokens_per_image == config.tokens_per_image


def test_presets_are_built_once_and_unknown_names_list_the_known_ones() -> None:
    assert get_preset("tiny-zh") is get_preset("tiny-zh")
    assert sum(preset.embedded for preset in PRESETS.values()) == 1
    with pytest.raises(UnknownEntryError, match="unknown model preset 'nope'; known: base-zh, debug-tiny"):
        get_preset("nope")


def test_encoders_with_package_weights_are_no_hub_download():
    """An encoder whose weights come from an installed package downloads nothing."""
    from fusion.encoders import ENCODERS
    from ultra.model.presets import PRESETS

    preset = PRESETS[sorted(PRESETS)[0]]
    lite = ENCODERS["efficientnet-lite0"]
    assert lite.weights is not None
    with_lite = preset.model_copy(update={"encoders": [lite]})
    assert with_lite.hub_downloads() == ([preset.llm_hub_name] if preset.llm_hub_name else [])
