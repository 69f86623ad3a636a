"""Shared fixtures: the real data beside the checkout, and tiny models built offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# The suite never downloads weights; set before any test imports huggingface_hub (which reads it
# once), so hub look-ups fail at once instead of waiting on network time-outs.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_root() -> Path:
    """``../shared/data`` beside the checkout, or $ULTRA_SHARED_DATA."""
    override = os.environ.get("ULTRA_SHARED_DATA")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data (SLAKE, VQA-RAD, BUSI, DICOM, laparoscopy, PromptCBLUE)."""
    root = shared_data_root()
    if not (root / "SOURCES.md").is_file():
        pytest.skip(
            f"real data not found at {root} (set ULTRA_SHARED_DATA or place shared/data beside the repo)"
        )
    return root


@pytest.fixture(scope="session")
def tiny_model():
    """A random-init tiny ``(model, processor)`` (the ``debug-tiny`` preset), built offline in well under a second.

    Session-scoped and shared: tests that train or wrap it must work on ``copy.deepcopy(model)``.
    """
    import torch

    from ultra.model import build_model

    torch.manual_seed(0)
    model, processor = build_model("debug-tiny", pretrained=False)
    return model.eval(), processor
