"""Save and load a VisionFusion as ``fusion_config.json`` + ``fusion.safetensors``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from safetensors.torch import load_model, save_model

from fusion.config import FusionConfig
from fusion.model import VisionFusion

logger = logging.getLogger(__name__)

CONFIG_NAME = "fusion_config.json"
WEIGHTS_NAME = "fusion.safetensors"


def save_fusion(fusion: VisionFusion, directory: str | Path) -> Path:
    """Write the resolved config (full encoder specs) and all weights; returns the folder."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    config = fusion.config.resolved().model_dump(mode="json")
    (folder / CONFIG_NAME).write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    save_model(fusion, str(folder / WEIGHTS_NAME))
    logger.info("saved VisionFusion (%s) to %s", ", ".join(fusion.encoder_names), folder)
    return folder


def load_fusion(directory: str | Path) -> VisionFusion:
    """Rebuild from the saved config without hub downloads, then load the saved weights."""
    folder = Path(directory)
    config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"load_fusion: {path} is missing")
    try:
        config = FusionConfig.model_validate(json.loads(config_path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValueError) as error:
        raise ValueError(f"load_fusion: {config_path} is not a valid fusion config: {error}") from error
    fusion = VisionFusion(config, load_pretrained=False)
    missing, unexpected = load_model(fusion, str(weights_path), strict=True)
    if missing or unexpected:
        raise ValueError(f"load_fusion: {weights_path} does not match its config")
    return fusion
