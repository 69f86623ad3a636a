"""VisionFusion: every registered encoder x every fusion mode, the paper's formula, save/load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import timm
import torch
from PIL import Image

import fusion
from fusion import EncoderSpec, FusionConfig, VisionFusion
from fusion.modes import FUSION_MODES
from fusion.registry import UnknownEntryError

MODES = FUSION_MODES.names()
PARTNER = "tiny-cnn"


def _noise_images(count: int, seed: int = 0, size: tuple[int, int] = (48, 40)) -> list[Image.Image]:
    """Random images: a flat image makes every token equal and hides dead gradients."""
    rng = np.random.default_rng(seed)
    return [
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)) for _ in range(count)
    ]


def _tiny_fusion(encoders: list[EncoderSpec | str], mode: str = "weighted", **kwargs) -> VisionFusion:
    torch.manual_seed(0)
    config = FusionConfig(encoders=encoders, hidden_size=16, grid=(3, 3), mode=mode, **kwargs)
    return VisionFusion(config)


def test_registry_holds_paper_encoders_and_small_cnns() -> None:
    names = fusion.ENCODERS.names()
    for required in ("clip-vit-l-336", "sam-vit-b", "resnet10t", "convnext-atto"):
        assert required in names
    for name in names:
        spec = fusion.ENCODERS[name]
        assert timm.is_model(spec.timm_name), spec.timm_name
    assert fusion.ENCODERS["clip-vit-l-336"].pretrained
    assert fusion.ENCODERS["clip-vit-l-336"].feature_layer == -2
    # the parametrised test builds every tiny variant: none may need a weights package
    assert all(fusion.ENCODERS[name].as_tiny().weights is None for name in names)
    with pytest.raises(UnknownEntryError, match="unknown encoder 'no-such-encoder'; known: clip-vit-l-336"):
        fusion.ENCODERS["no-such-encoder"]


def test_spec_rejects_unknown_timm_model() -> None:
    with pytest.raises(ValueError, match="timm has no model"):
        EncoderSpec(name="bad", timm_name="not_a_timm_model_xyz")


def test_own_encoders_come_from_an_extended_registry_never_the_built_in_one() -> None:
    spec = fusion.ENCODERS["tiny-cnn"]
    with pytest.raises(ValueError, match="already registered: tiny-cnn"):
        fusion.ENCODERS.extended({"tiny-cnn": spec.model_copy(update={"input_size": 40})})
    mine = spec.model_copy(update={"name": "my-cnn", "input_size": 40})
    encoders = fusion.ENCODERS.extended({"my-cnn": mine})
    assert "my-cnn" not in fusion.ENCODERS
    assert fusion.build_encoder("my-cnn", encoders).spec == mine
    config = FusionConfig.model_validate(
        {"encoders": ["my-cnn", "tiny-vit"], "hidden_size": 8}, context={"encoders": encoders}
    )
    # stored as full specs, so a saved config loads without the plug-in
    assert config.encoders == [mine, fusion.ENCODERS["tiny-vit"]]
    with pytest.raises(ValueError, match="unknown encoder 'my-cnn'"):
        FusionConfig(encoders=["my-cnn"], hidden_size=8)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("encoder_name", fusion.ENCODERS.names())
def test_every_encoder_every_mode(encoder_name: str, mode: str) -> None:
    """Shape, finite values, and a non-zero gradient on every trainable parameter."""
    spec = fusion.ENCODERS[encoder_name].as_tiny()
    model = _tiny_fusion([spec, PARTNER], mode=mode)
    model.train()
    pixel_values = model.preprocess(_noise_images(2))
    assert [tuple(p.shape) for p in pixel_values] == [
        (2, 3, spec.input_size, spec.input_size),
        (2, 3, fusion.ENCODERS[PARTNER].input_size, fusion.ENCODERS[PARTNER].input_size),
    ]
    out = model(pixel_values)
    assert out.shape == (2, model.num_tokens, 16)
    assert torch.isfinite(out).all()
    (out * torch.randn_like(out)).sum().backward()
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    if mode != "concat":
        assert "fusion_logits" in trainable
    dead = [name for name, p in trainable.items() if p.grad is None or not torch.any(p.grad != 0)]
    assert not dead, f"no gradient reached: {dead[:5]}"
    weights = model.fusion_weights()
    assert set(weights) == {spec.name, PARTNER}
    assert sum(weights.values()) == pytest.approx(1.0)


@pytest.mark.parametrize("mode", MODES)
def test_every_mode_fuses_cached_encoder_features_as_its_forward(mode: str) -> None:
    """``fuse_features`` on ``encode_each``'s tokens is the forward, mixing weights moved off 0.5."""
    model = _tiny_fusion(["tiny-vit", "tiny-convnext"], mode=mode).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
        pixel_values = model.preprocess(_noise_images(2, seed=5))
        fused = model.fuse_features(model.encode_each(pixel_values))
        torch.testing.assert_close(fused, model(pixel_values), rtol=0, atol=0)
    assert model.rule is FUSION_MODES[mode]


@pytest.mark.parametrize("projector", fusion.PROJECTORS.names())
def test_every_projector_maps_channels_to_hidden_and_trains(projector: str) -> None:
    model = _tiny_fusion(["tiny-vit", "tiny-cnn"], projector=projector)
    out = model(model.preprocess(_noise_images(2, seed=6)))
    assert out.shape == (2, model.num_tokens, 16) and torch.isfinite(out).all()
    out.pow(2).mean().backward()
    assert all(p.grad is not None and torch.any(p.grad != 0) for p in model.projectors.parameters())
    with pytest.raises(ValueError, match="unknown projector 'mlp3x'; known: linear, mlp2x_gelu"):
        FusionConfig(encoders=["tiny-vit"], hidden_size=8, projector="mlp3x")


def test_cnn_and_vit_token_maps_follow_feature_layer() -> None:
    cnn = fusion.build_encoder(fusion.ENCODERS["resnet10t"].as_tiny())
    tokens = cnn(torch.randn(1, 3, 64, 64))
    assert tokens.grid == (4, 4)  # penultimate stage of a ResNet = stride 16
    assert tokens.tokens().shape == (1, 16, 32) and cnn.num_channels == 32
    last = fusion.build_encoder(
        fusion.ENCODERS["resnet10t"].as_tiny().model_copy(update={"feature_layer": -1})
    )
    assert last(torch.randn(1, 3, 64, 64)).grid == (2, 2)
    vit = fusion.build_encoder("tiny-vit-cls")
    vit_tokens = vit(torch.randn(1, 3, 32, 32))
    assert vit_tokens.grid == (4, 4) and vit_tokens.prefix is not None
    assert vit_tokens.tokens().shape == (1, 17, 24)
    with pytest.raises(ValueError, match="feature_layer"):
        fusion.build_encoder(fusion.ENCODERS["tiny-cnn"].model_copy(update={"feature_layer": 9}))


def test_small_cnn_inputs_128_and_160_work() -> None:
    model = _tiny_fusion(
        [fusion.ENCODERS["resnet10t"], fusion.ENCODERS["resnet10t-128"]], mode="weighted"
    )
    pixel_values = model.preprocess(_noise_images(1))
    assert [p.shape[-1] for p in pixel_values] == [160, 128]
    with torch.no_grad():
        assert model(pixel_values).shape == (1, 9, 16)


def test_weighted_starts_at_paper_alpha_and_matches_formula() -> None:
    model = _tiny_fusion(["tiny-vit", "tiny-cnn"], mode="weighted")
    assert model.fusion_weights() == {"tiny-vit": 0.5, "tiny-cnn": 0.5}
    with torch.no_grad():
        model.fusion_logits.copy_(torch.tensor([0.3, -0.4]))
        pixel_values = model.preprocess(_noise_images(2, seed=1))
        h1, h2 = model.project_each(pixel_values)
        alpha = model.fusion_weights()["tiny-vit"]
        torch.testing.assert_close(model(pixel_values), alpha * h1 + (1 - alpha) * h2)
    assert alpha == pytest.approx(torch.sigmoid(torch.tensor(0.7)).item())


@pytest.mark.parametrize("forced", [0, 1])
def test_weight_forced_to_one_equals_that_encoders_projection(forced: int) -> None:
    model = _tiny_fusion(["tiny-vit", "tiny-convnext"], mode="weighted")
    logits = torch.full((2,), float("-inf"))
    logits[forced] = 0.0
    with torch.no_grad():
        model.fusion_logits.copy_(logits)
        pixel_values = model.preprocess(_noise_images(2, seed=2))
        projected = model.project_each(pixel_values)
        torch.testing.assert_close(model(pixel_values), projected[forced], rtol=0, atol=0)
        torch.testing.assert_close(model(pixel_values), projected[forced], rtol=0, atol=0)
    assert model.fusion_weights()[model.encoder_names[forced]] == 1.0


def test_token_gate_varies_per_token_after_training_step() -> None:
    model = _tiny_fusion(["tiny-vit", "tiny-cnn"], mode="token_gate")
    pixel_values = model.preprocess(_noise_images(2, seed=3))
    before = model.token_weights(pixel_values)
    assert torch.allclose(before, torch.full_like(before, 0.5))
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    model(pixel_values).pow(2).mean().backward()
    optimizer.step()
    with torch.no_grad():
        after = model.token_weights(pixel_values)
    assert after.shape == (2, 9, 2)
    assert after[..., 0].std() > 0


def test_blank_pixel_values_are_the_mean_colour() -> None:
    model = _tiny_fusion(["tiny-vit", "tiny-cnn"])
    blank = model.blank_pixel_values(3)
    assert [tuple(b.shape) for b in blank] == [(3, 3, 32, 32), (3, 3, 32, 32)]
    assert all(torch.count_nonzero(b) == 0 for b in blank)
    mean_colour = tuple(round(255 * m) for m in model.encoders[0].transform.mean)
    from_image = model.preprocess([Image.new("RGB", (20, 20), mean_colour)])[0]
    assert from_image.abs().max() < 0.02


def test_frozen_encoders_get_no_grad_and_stay_in_eval() -> None:
    model = _tiny_fusion(["tiny-cnn", "tiny-convnext"], freeze_encoders=True)
    model.train()
    assert not any(encoder.training for encoder in model.encoders)
    out = model(model.preprocess(_noise_images(2)))
    out.sum().backward()
    assert all(p.grad is None for p in model.encoders.parameters())
    assert model.fusion_logits.grad is not None
    model.encoders[1].requires_grad_(True)  # a later training stage unfreezes one encoder
    model.train()
    assert model.encoders[1].training and not model.encoders[0].training
    model(model.preprocess(_noise_images(2))).sum().backward()
    assert all(p.grad is not None for p in model.encoders[1].parameters())
    assert all(p.grad is None for p in model.encoders[0].parameters())


def test_output_follows_module_dtype() -> None:
    model = _tiny_fusion(["tiny-vit", "tiny-cnn"]).to(torch.float64)
    out = model(model.preprocess(_noise_images(1)))
    assert out.dtype == torch.float64
    assert all(b.dtype == torch.float64 for b in model.blank_pixel_values(1))


def test_wrong_number_of_inputs_names_both_counts() -> None:
    model = _tiny_fusion(["tiny-vit", "tiny-cnn"])
    with pytest.raises(ValueError, match="2 encoders.*1 pixel"):
        model([torch.zeros(1, 3, 32, 32)])


def test_config_is_json_round_trippable_and_validates() -> None:
    config = FusionConfig(encoders=["tiny-vit", fusion.ENCODERS["tiny-cnn"]], hidden_size=8)
    restored = FusionConfig.model_validate(json.loads(json.dumps(config.model_dump(mode="json"))))
    assert restored.resolved_encoders() == [
        fusion.ENCODERS["tiny-vit"],
        fusion.ENCODERS["tiny-cnn"],
    ]
    with pytest.raises(ValueError, match="unique"):
        FusionConfig(encoders=["tiny-vit", "tiny-vit"], hidden_size=8)
    with pytest.raises(ValueError, match="unknown fusion mode 'sum'; known: concat, token_gate, weighted"):
        FusionConfig(encoders=["tiny-vit"], hidden_size=8, mode="sum")
    with pytest.raises(ValueError, match="unknown encoder"):
        FusionConfig(encoders=["nope"], hidden_size=8)


@pytest.mark.parametrize("mode", MODES)
def test_save_load_round_trip_gives_identical_outputs(tmp_path, mode: str) -> None:
    model = _tiny_fusion(["tiny-vit-cls", "tiny-cnn"], mode=mode, projector="linear")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    model.eval()
    fusion.save_fusion(model, tmp_path / "saved")
    assert (tmp_path / "saved" / "fusion.safetensors").is_file()
    loaded = fusion.load_fusion(tmp_path / "saved").eval()
    pixel_values = model.preprocess(_noise_images(2, seed=4))
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values), model(pixel_values), rtol=0, atol=0)
    assert loaded.fusion_weights() == model.fusion_weights()


def test_load_fusion_names_the_missing_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="fusion_config.json"):
        fusion.load_fusion(tmp_path)


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_local_checkpoint_loads_exactly(tmp_path, suffix: str) -> None:
    from safetensors.torch import save_file

    spec = fusion.ENCODERS["tiny-cnn"]
    torch.manual_seed(1)
    source = timm.create_model(spec.timm_name, pretrained=False, **spec.model_kwargs)
    path = tmp_path / f"encoder{suffix}"
    if suffix == ".pth":
        torch.save({"state_dict": source.state_dict()}, path)
    else:
        save_file(source.state_dict(), str(path))
    encoder = fusion.build_encoder(
        spec.model_copy(update={"name": "from-file", "checkpoint_path": str(path)})
    )
    torch.testing.assert_close(
        encoder.model.layer3[0].conv1.weight, source.layer3[0].conv1.weight, rtol=0, atol=0
    )
    torch.testing.assert_close(encoder.model.conv1[0].weight, source.conv1[0].weight, rtol=0, atol=0)


def test_mismatched_or_missing_checkpoint_names_the_file(tmp_path) -> None:
    cnn = fusion.ENCODERS["tiny-cnn"]
    path = tmp_path / "cnn.pth"
    torch.save(timm.create_model(cnn.timm_name, pretrained=False, **cnn.model_kwargs).state_dict(), path)
    vit = fusion.ENCODERS["tiny-vit"]
    with pytest.raises(ValueError, match=r"cnn\.pth does not match"):
        fusion.build_encoder(vit.model_copy(update={"name": "wrong", "checkpoint_path": str(path)}))
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        fusion.build_encoder(
            vit.model_copy(update={"name": "gone", "checkpoint_path": str(tmp_path / "nowhere.pth")})
        )
