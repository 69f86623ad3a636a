"""A stage's weight average (``ema_decay``): the stage ends with the EMA of its step weights, the
training path itself is unchanged, and a resumed stage ends with the same weights."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.numerics import assert_close
from tests.test_train import build_tiny, data_dir, make_config  # noqa: F401  (the module-scoped toy images)
from ultra.train import Trainer, TrainingInterrupted
from ultra.train.checkpoint import WEIGHTS, list_checkpoints

STEPS = 4


def encoder_stage(**extra) -> dict:
    """The toy classification stage: augmented images through encoders with batch norm."""
    return {
        "name": "encoders",
        "objective": "classification",
        "train": ["model.vision_tower.encoders.*", "model.vision_tower.projectors.*"],
        "sources": ["toy"],
        "batch_size": 4,
        "max_steps": STEPS,
        "lr": 1e-2,
        "augmentation": {},
        **extra,
    }


def train(data_dir, output_dir, stage: dict, **extra):  # noqa: F811
    model, processor = build_tiny()
    config = make_config(data_dir, output_dir, [stage], **extra)
    Trainer(config, model_builder=lambda _: (model, processor), show_progress=False).run()
    return model


def step_weights(output_dir) -> list[dict[str, torch.Tensor]]:
    """The raw weights saved after each step but the last (checkpoints every step)."""
    return [load_file(str(folder / WEIGHTS)) for folder in list_checkpoints(output_dir)[:-1]]


def test_the_stage_ends_with_the_average_of_its_step_weights(data_dir, tmp_path):  # noqa: F811
    every_step = {"save_every_steps": 1, "keep_checkpoints": STEPS + 1}
    plain = train(data_dir, tmp_path / "plain", encoder_stage(), **every_step)
    averaged = train(data_dir, tmp_path / "ema", encoder_stage(ema_decay=0.5), **every_step)

    # the average never feeds back into training: both runs take the same steps
    raw_plain, raw_ema = step_weights(tmp_path / "plain"), step_weights(tmp_path / "ema")
    assert len(raw_plain) == STEPS - 1
    for before, after in zip(raw_plain, raw_ema, strict=True):
        for name in before:
            assert torch.equal(before[name], after[name]), name

    trajectory = [*raw_plain, plain.state_dict()]
    trained = [name for name, p in plain.named_parameters() if p.requires_grad]
    moved = [name for name in trained if not torch.equal(trajectory[0][name], trajectory[-1][name])]
    assert moved, "the toy stage must move its weights for the average to mean anything"
    final = averaged.state_dict()
    for name in trajectory[0]:  # a checkpoint keeps one of each pair of tied weights
        value, expected = final[name], trajectory[0][name].clone()
        if value.is_floating_point():
            for weights in trajectory[1:]:
                expected = 0.5 * expected + 0.5 * weights[name]
        else:  # counters are not averaged
            expected = trajectory[-1][name]
        assert_close(value, expected, stages=STEPS, name=name)
    assert any(not torch.equal(final[name], plain.state_dict()[name]) for name in moved)
    running = [name for name in final if name.endswith("running_mean")]
    assert running, "the toy encoders have batch norm; its statistics are averaged too"


def test_a_resumed_stage_ends_with_the_same_average(data_dir, tmp_path):  # noqa: F811
    """Tolerance: exact equality — the same ops in the same order on CPU, fp32."""
    stage = encoder_stage(ema_decay=0.7)
    whole = train(data_dir, tmp_path / "whole", stage)

    config = make_config(data_dir, tmp_path / "parts", [stage], save_every_steps=2)
    model, processor = build_tiny()
    with pytest.raises(TrainingInterrupted):
        Trainer(config, model_builder=lambda _: (model, processor), show_progress=False, stop_after=2).run()
    resumed, _ = build_tiny()
    Trainer(config, model_builder=lambda _: (resumed, processor), show_progress=False).run(resume=True)
    for name, value in whole.state_dict().items():
        assert torch.equal(value, resumed.state_dict()[name]), name


def test_resuming_an_averaged_stage_from_a_checkpoint_without_the_average_is_refused(
    data_dir,  # noqa: F811
    tmp_path,
):
    config = make_config(data_dir, tmp_path / "run", [encoder_stage()], save_every_steps=2)
    model, processor = build_tiny()
    with pytest.raises(TrainingInterrupted):
        Trainer(config, model_builder=lambda _: (model, processor), show_progress=False, stop_after=2).run()
    changed = make_config(data_dir, tmp_path / "run", [encoder_stage(ema_decay=0.9)], save_every_steps=2)
    fresh, _ = build_tiny()
    with pytest.raises(ValueError, match="has none; resume with the configuration"):
        Trainer(changed, model_builder=lambda _: (fresh, processor), show_progress=False).run(resume=True)


@pytest.mark.parametrize("decay", [0, 1, -0.1])
def test_ema_decay_outside_the_open_unit_interval_is_a_config_error(data_dir, tmp_path, decay):  # noqa: F811
    with pytest.raises(ValueError, match="ema_decay"):
        make_config(data_dir, tmp_path, [encoder_stage(ema_decay=decay)])


def test_only_what_the_stage_changes_is_averaged_and_a_long_horizon_is_named(tmp_path, caplog):
    from torch import nn

    from ultra.train.averaging import WeightAverage, warn_if_start_dominates

    module = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    module[2].requires_grad_(False)  # a frozen part (an LLM under LoRA) is not copied
    module.register_buffer("codes", torch.randn(4, 3).T)  # a transposed view, like the decision codes
    average = WeightAverage(module, 0.9)
    averaged = {"0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var", "codes"}
    assert set(average.names) == averaged
    with pytest.raises(ValueError, match="has seen no step"):
        average.load_into(module)
    average.update(module)
    save_file(average.state_dict(), str(tmp_path / "average.safetensors"))  # views are refused there
    restored = WeightAverage(module, 0.9)
    restored.load_state_dict(load_file(str(tmp_path / "average.safetensors")))
    assert restored.steps == 1 and torch.equal(restored.tensors["codes"], module.codes)

    warn_if_start_dominates("probe", 0.999, 300)
    assert "averages over ~1000 steps but the stage has 300" in caplog.text
    assert "keep 74% of the average" in caplog.text
    caplog.clear()
    warn_if_start_dominates("tower", 0.99, 525)
    assert not caplog.text


def test_the_last_validation_says_it_scored_the_average(data_dir, tmp_path):  # noqa: F811
    source = {"kind": "records", "path": str(data_dir / "records.jsonl")}
    model, processor = build_tiny()
    config = make_config(
        data_dir,
        tmp_path / "run",
        [encoder_stage(ema_decay=0.5)],
        validation={"source": source, "every_steps": 2},
    )
    result = Trainer(config, model_builder=lambda _: (model, processor), show_progress=False).run()
    rows = [(row["step"], row.get("weights")) for row in result.validation]
    assert rows == [(2, None), (STEPS, "average")]
