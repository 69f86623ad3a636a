"""The decision token: the tower's class probabilities as one more image token, learnt by the
classification stage through the tower's own head, read by the LLM, saved and loaded with the model."""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from pydantic import ValidationError

from fusion import FusionConfig, VisionFusion
from screening.backbone import pooled_features
from tests.numerics import assert_close
from tests.test_train import data_dir, make_config  # noqa: F401  (the module-scoped toy images)
from ultra import Answerer, Request
from ultra.config_io import ConfigError
from ultra.model import load_model
from ultra.train import Trainer
from ultra.train.config import ModelSource
from ultra.train.objectives.language_modeling import GridDropoutView
from ultra.train.runner import build_model

CLASSES = ["benign", "malignant", "normal"]
TOWER = [
    "model.vision_tower.encoders.*",
    "model.vision_tower.projectors.*",
    "model.vision_tower.fusion_logits",
    "model.vision_tower.decision_head.*",
]


def decision_fusion() -> VisionFusion:
    torch.manual_seed(0)
    config = FusionConfig(
        encoders=["tiny-cnn", "tiny-convnext"], hidden_size=16, grid=(2, 2), decision_classes=CLASSES
    )
    return VisionFusion(config).eval()


def test_decision_token_embeds_the_heads_probabilities():
    fusion = decision_fusion()
    pixels = [torch.randn(3, 3, 32, 32), torch.randn(3, 3, 32, 32)]
    with torch.no_grad():
        tokens, grid = fusion(pixels), fusion(pixels, decision=False)
        probabilities = torch.softmax(fusion.decision_head(grid.mean(dim=1)), dim=-1)
        expected = probabilities @ fusion.decision_codes
    assert fusion.num_tokens == 5 and tokens.shape == (3, 5, 16)
    assert torch.equal(tokens[:, :4], grid)
    assert_close(tokens[:, 4], expected, stages=4, name="decision token")
    codes = fusion.decision_codes  # one orthogonal code per class, unit RMS; a buffer, never trained
    assert_close(codes @ codes.T, 16 * torch.eye(3), stages=16, name="class codes' Gram matrix")
    assert "decision_codes" in fusion.state_dict() and "decision_codes" not in dict(fusion.named_parameters())


def test_screening_pools_the_grid_tokens_without_the_decision_token():
    fusion = decision_fusion()
    images = [Image.new("RGB", (40, 40), (90, 90, 90)), Image.new("RGB", (40, 40), (10, 200, 30))]
    with torch.no_grad():
        expected = fusion(fusion.preprocess(images), decision=False).mean(dim=1)
    assert_close(pooled_features(fusion, images), expected, stages=4, name="pooled features")


@pytest.mark.parametrize("classes", [["benign"], ["benign", "benign"]])
def test_decision_classes_must_be_two_or_more_distinct_names(classes):
    with pytest.raises(ValidationError, match="decision_classes"):
        FusionConfig(encoders=["tiny-cnn"], hidden_size=16, decision_classes=classes)


def tower_stage(train: list[str]) -> dict:
    return {
        "name": "tower",
        "objective": "classification",
        "train": train,
        "sources": ["toy"],
        "batch_size": 4,
        "max_steps": 3,
        "lr": 1e-2,
    }


def decision_config(data_dir, output_dir, stages):  # noqa: F811
    config = make_config(data_dir, output_dir, stages)
    return config.model_copy(
        update={"model": ModelSource(name_or_path="debug-tiny", decision_classes=CLASSES)}
    )


def test_tower_learns_its_decision_head_and_the_llm_reads_the_token(data_dir, tmp_path):  # noqa: F811
    stages = [
        tower_stage(TOWER),
        {
            "name": "llm",
            "train": ["model.language_model.*"],
            "sources": ["toy"],
            "batch_size": 4,
            "max_steps": 2,
        },
    ]
    torch.manual_seed(0)
    model, processor = build_model(decision_config(data_dir, tmp_path, stages))
    head_before = model.vision_tower.decision_head.weight.detach().clone()
    code_before = model.vision_tower.decision_codes.clone()
    trainer = Trainer(
        decision_config(data_dir, tmp_path / "run", stages),
        model_builder=lambda _: (model, processor),
        show_progress=False,
    )
    trainer.run()
    assert not torch.equal(model.vision_tower.decision_head.weight, head_before), "the head did not learn"
    assert torch.equal(model.vision_tower.decision_codes, code_before), "the fixed codes moved"
    assert len(trainer.side_modules.modules) == 0, "a temporary head was made beside the tower's own"

    reloaded, reloaded_processor = load_model(tmp_path / "run" / "final")
    assert reloaded.config.tokens_per_image == 5
    assert reloaded.config.vision.decision_classes == CLASSES
    assert_close(
        reloaded.vision_tower.decision_head.weight,
        model.vision_tower.decision_head.weight,
        stages=1024,  # exported as float16
        name="decision head after export",
    )
    # the prompt holds 4 grid tokens + the decision token, and the LLM's answer depends on it
    answerer = Answerer(reloaded, reloaded_processor)
    encoded = answerer.encode(
        Request(question="该病灶是良性还是恶性？", images=[Image.open(data_dir / "img 0.png")])
    )
    assert int((encoded.input_ids == reloaded.config.image_token_id).sum()) == 5
    batch = {"input_ids": encoded.input_ids[None], "pixel_values": encoded.pixel_values}
    with torch.no_grad():
        with_token = reloaded(**batch).logits[0, -1]
        reloaded.vision_tower.decision_codes.zero_()
        without_token = reloaded(**batch).logits[0, -1]
    assert not torch.allclose(with_token, without_token), "the decision token does not reach the LLM"


def test_stage_with_the_decision_classes_must_train_the_decision_head(data_dir, tmp_path):  # noqa: F811
    config = decision_config(data_dir, tmp_path, [tower_stage(TOWER[:-1])])
    with pytest.raises(ValueError, match=r"decision_head\.\* frozen"):
        Trainer(config, show_progress=False).run()


def test_decision_classes_apply_to_presets_only(tmp_path):
    config = make_config(tmp_path, tmp_path, [{"name": "s", "train": ["*"]}])
    folder = config.model_copy(
        update={"model": ModelSource(name_or_path=str(tmp_path), decision_classes=CLASSES)}
    )
    with pytest.raises(ConfigError, match="decision_classes applies to a preset built fresh"):
        build_model(folder)


def test_grid_dropout_silences_the_grid_of_a_seeded_share_of_samples():
    examples = [
        {"image_features": [torch.randn(5, 8)], "input_ids": torch.tensor([index])} for index in range(400)
    ]
    order = list(range(400))[::-1]
    droppable = [index % 4 != 0 for index in range(400)]  # e.g. DICOM records: never dropped
    view = GridDropoutView(examples, order, 0, droppable, rate=0.3, seed=7)
    silenced = 0
    for position in range(len(view)):
        tokens, original = view[position]["image_features"][0], examples[order[position]]["image_features"][0]
        assert torch.equal(tokens[-1], original[-1]), "the decision token must be kept"
        if not torch.equal(tokens, original):
            assert not tokens[:-1].any(), "a dropped grid is zeroed whole"
            assert droppable[order[position]], "a record without the decision labels was dropped"
            silenced += 1
    assert 0.24 < silenced / 300 < 0.36, f"{silenced} of 300 droppable grids silenced at rate 0.3"
    assert not examples[order[0]]["image_features"][0][:-1].eq(0).all(), "the cached tokens were changed"
    resumed = GridDropoutView(
        examples, order, 100, droppable, rate=0.3, seed=7
    )  # a resumed run drops the same
    for position in range(len(resumed)):
        assert torch.equal(resumed[position]["image_features"][0], view[position + 100]["image_features"][0])


@pytest.mark.parametrize(
    "model, options, message",
    [
        ("debug-tiny", {"grid_dropout": 0.5}, "the vision tower has none"),
        ("decision", {"grid_dropout": 1.0}, "grid_dropout"),
        ("decision", {"grid_drop": 0.5}, "grid_drop"),
        ("decision+tower", {"grid_dropout": 0.5}, "works on cached image tokens"),
    ],
)
def test_language_modeling_options_are_checked(data_dir, tmp_path, model, options, message):  # noqa: F811
    stage = {"name": "llm", "train": ["model.language_model.*"], "sources": ["toy"], "max_steps": 1}
    if model == "decision+tower":  # the tower trains in the stage: its tokens cannot be cached
        stage["train"] = [*stage["train"], "model.vision_tower.projectors.*"]
    stages = [{**stage, "objective_options": options}]
    classes = CLASSES if model.startswith("decision") else []
    if classes:  # the decision head is trained first, as a run with a decision token must
        stages.insert(0, tower_stage(TOWER))
    config = make_config(data_dir, tmp_path, stages)
    config = config.model_copy(
        update={"model": ModelSource(name_or_path="debug-tiny", decision_classes=classes)}
    )
    with pytest.raises(ConfigError, match=message):
        Trainer(config, show_progress=False).run()


def test_screening_fingerprint_covers_the_grid_not_the_decision_token():
    from screening.backbone import backbone_fingerprint

    torch.manual_seed(0)
    plain = VisionFusion(FusionConfig(encoders=["tiny-cnn", "tiny-convnext"], hidden_size=16, grid=(2, 2)))
    with_decision = decision_fusion()  # the same seed: the same grid weights, plus a head and codes
    assert backbone_fingerprint(with_decision) == backbone_fingerprint(plain)
    with torch.no_grad():
        plain.projectors[0][0].weight.add_(1e-3)
    assert backbone_fingerprint(with_decision) != backbone_fingerprint(plain)


def test_a_stage_reading_the_decision_token_before_its_head_trained_is_refused(data_dir, tmp_path):  # noqa: F811
    llm = {"name": "llm", "train": ["model.language_model.*"], "sources": ["toy"], "max_steps": 1}
    llm_and_head = {**llm, "name": "llm-and-head", "train": [*llm["train"], TOWER[-1]]}
    phantoms = {**tower_stage(TOWER[:-1]), "name": "other-labels", "label_key": "other"}
    for stages in ([llm], [llm_and_head], [phantoms, llm]):
        config = decision_config(data_dir, tmp_path, stages)
        with pytest.raises(ConfigError, match="no stage before it trains model.vision_tower.decision_head"):
            Trainer(config, show_progress=False).run()
    assert not (tmp_path / "checkpoints").exists(), "refused before any stage ran"
