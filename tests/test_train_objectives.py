"""The objectives seam: a toy pairwise objective, an entry only of this file's extended registry,
trains through the unchanged runner, keeps exact resume and reports its failed items the one way."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from data_zh import Labels, Media, Record, write_records
from data_zh.schema import qa_turns
from fusion.registry import Registry
from ultra.model import IGNORE_INDEX, build_model
from ultra.train import (
    OBJECTIVES,
    LoadFailure,
    Objective,
    StageContext,
    TrainConfig,
    Trainer,
    TrainingInterrupted,
    UnknownObjectiveError,
    stage_order,
)
from ultra.train.checkpoint import list_checkpoints
from ultra.train.data import messages_of
from ultra.train.loop import StagePlan

ANSWERS = {"benign": "良性", "malignant": "恶性", "normal": "正常"}
FINDINGS = {"benign": "边界清晰、形态规则", "malignant": "边界不清、形态不规则", "normal": "未见明显异常"}
EVASIVE = "无法判断"
REFERENCE_KEY = "pairwise_reference"
BETA = 0.5  # logistic, never saturated: each step's gradient depends on the reference


def sequence_log_likelihood(model: nn.Module, batch: dict) -> torch.Tensor:
    """Sum of log p(answer token) per row (prompt and padding are IGNORE_INDEX in ``labels``)."""
    inputs = {key: value for key, value in batch.items() if key != "labels"}
    logits = model(**inputs).logits[:, :-1].float()
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE_INDEX
    picked = torch.log_softmax(logits, dim=-1).gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * mask).sum(dim=1)


class PairDataset(Dataset):
    """Each record as (chosen, rejected): its own answer against an evasive one."""

    def __init__(self, records: list[Record], processor) -> None:
        self.records = records
        self.processor = processor

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[dict, dict] | LoadFailure:
        record = self.records[index]
        try:
            if len(record.labels.classes) != 1:
                raise ValueError("no single class label to build a rejected answer from")
            messages = messages_of(record)
            rejected = [*messages[:-1], {"role": "assistant", "content": EVASIVE}]
            return self.processor.encode_example(messages), self.processor.encode_example(rejected)
        except Exception as error:
            return LoadFailure.of(record.id, error)


def pair_batch(processor, pairs: list[tuple[dict, dict]]) -> dict:
    """Chosen rows first, then the rejected rows in the same order."""
    return processor.collate([chosen for chosen, _ in pairs] + [rejected for _, rejected in pairs])


def mean_margin(model: nn.Module, processor, records: list[Record]) -> float:
    """Mean log-likelihood of the chosen answer minus the rejected one (what the objective raises)."""
    pairs = [PairDataset(records, processor)[index] for index in range(len(records))]
    pairs = [pair for pair in pairs if not isinstance(pair, LoadFailure)]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        scores = sequence_log_likelihood(model, pair_batch(processor, pairs))
    model.train(was_training)
    half = len(pairs)
    return float((scores[:half] - scores[half:]).mean())


class PairwiseRanking(Objective):
    """A logistic ranking loss over answer log-likelihoods relative to a frozen reference copy of
    the stage-start model (DPO's form); the reference is a side module, so resume restores it."""

    def plan(self, context: StageContext) -> StagePlan:
        processor = context.processor
        reference = context.side_modules.get_or_create(
            REFERENCE_KEY, lambda: copy.deepcopy(context.model).requires_grad_(False).eval()
        )
        reference.to(context.device)

        def loss_fn(module: nn.Module, batch: dict) -> torch.Tensor:
            half = batch["input_ids"].shape[0] // 2
            policy = sequence_log_likelihood(module, batch)
            with torch.no_grad():
                anchor = sequence_log_likelihood(reference, batch)
            gain = policy - anchor
            return -nn.functional.logsigmoid(BETA * (gain[:half] - gain[half:])).mean()

        def validate(module: nn.Module) -> dict:
            return {"margin": mean_margin(module, processor, context.validation_records)}

        return StagePlan(
            stage=context.stage,
            index=context.index,
            module=context.model,
            dataset=PairDataset(context.records, processor),
            collate=lambda pairs: pair_batch(processor, pairs),
            loss_fn=loss_fn,
            total_steps=context.steps_for(len(context.records)),
            validate=validate if context.validation_records else None,
        )


@pytest.fixture
def registry() -> Registry[type[Objective]]:
    """The built-in objectives plus the toy one, in a copy that dies with the test."""
    return OBJECTIVES.extended({"pairwise": PairwiseRanking})


def toy_record(index: int, label: str | None) -> Record:
    finding = FINDINGS[label] if label else "图像不完整"
    return Record(
        id=f"pair-{index}",
        source="toy",
        licence="CC0",
        specialty="breast",
        modality="US",
        language="zh",
        task="closed_vqa",
        media=Media(),
        conversations=qa_turns(f"超声所见：{finding}。该病灶是良性还是恶性？", ANSWERS[label or "normal"], 0),
        answer_type="closed",
        labels=Labels(classes=[label] if label else []),
        split="train",
    )


@pytest.fixture(scope="module")
def records_file(tmp_path_factory):
    """Twelve text-only preference records (three classes) and one without a label (fails to load)."""
    path = tmp_path_factory.mktemp("pairs") / "records.jsonl"
    records = [toy_record(index, list(ANSWERS)[index % 3]) for index in range(12)]
    write_records([*records, toy_record(99, None)], path)
    return path


def config_for(records_file, output_dir, steps: int, **extra) -> dict:
    return {
        "model": {"name_or_path": "in-memory"},
        "data": {"pairs": {"kind": "records", "path": str(records_file)}},
        "validation": {"source": {"kind": "records", "path": str(records_file)}, "every_steps": 2},
        "stages": [
            {
                "name": "prefer",
                "objective": "pairwise",
                "train": ["model.language_model.*"],
                "batch_size": 4,
                "max_steps": steps,
                "lr": 5e-3,
                "warmup_ratio": 0.0,
            }
        ],
        "output_dir": str(output_dir),
        **extra,
    }


def build_tiny(_config=None):
    torch.manual_seed(0)
    return build_model("debug-tiny", pretrained=False)


def test_toy_pairwise_objective_raises_the_margin_and_reports_the_bad_record(
    records_file, tmp_path, registry
):
    config = TrainConfig.model_validate(config_for(records_file, tmp_path / "run", steps=6))
    model, processor = build_tiny()
    from data_zh.io import read_records

    good = [record for record in read_records(records_file) if record.labels.classes]
    before = mean_margin(model, processor, good)
    result = Trainer(
        config, model_builder=lambda _: (model, processor), show_progress=False, objectives=registry
    ).run()
    after = mean_margin(model, processor, good)
    assert after > before + 1.0, f"margin {before:.3f} -> {after:.3f}"
    # the validation hook is the objective's own, run by the unchanged runner
    assert [row["step"] for row in result.validation] == [2, 4, 6]
    assert result.validation[-1]["margin"] == pytest.approx(after, rel=1e-4, abs=1e-4)
    # the unlabelled record fails in the objective's dataset and is reported once, the one way
    assert result.skipped_records == ["pair-99"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text(encoding="utf-8"))
    assert summary["skipped_records"] == ["pair-99"]
    assert "pairwise" not in OBJECTIVES, "the toy objective must not leak into the built-in registry"


def test_toy_pairwise_objective_resumes_exactly(records_file, tmp_path, registry):
    """Tolerance: exact equality — same ops in the same order on CPU, fp32; the frozen reference
    comes back from the checkpoint, not from the rebuilt model."""
    whole = TrainConfig.model_validate(config_for(records_file, tmp_path / "whole", steps=4))
    model_a, processor = build_tiny()
    Trainer(
        whole, model_builder=lambda _: (model_a, processor), show_progress=False, objectives=registry
    ).run()

    parts = TrainConfig.model_validate(
        config_for(records_file, tmp_path / "parts", steps=4, save_every_steps=2)
    )
    model_b, _ = build_tiny()
    with pytest.raises(TrainingInterrupted):
        Trainer(
            parts,
            model_builder=lambda _: (model_b, processor),
            show_progress=False,
            objectives=registry,
            stop_after=2,
        ).run()
    assert [path.name for path in list_checkpoints(tmp_path / "parts")] == ["step-0000002-prefer"]

    # the resumed process starts from other weights: only the checkpoint can give the trained
    # weights and the stage-start reference back
    model_c, _ = build_tiny()
    with torch.no_grad():
        for parameter in model_c.parameters():
            parameter.add_(0.01)
    result = Trainer(
        parts, model_builder=lambda _: (model_c, processor), show_progress=False, objectives=registry
    ).run(resume=True)
    # steps 3-4 read positions 8-15 of the stage order; the unlabelled record (index 12) fails there
    expected = sum(1 for index in stage_order(13, 4 * 4, seed=0)[8:] if index != 12)
    assert result.stages[0]["samples"] == expected, "the resumed run must only do steps 3-4"
    for name, value in model_a.state_dict().items():
        assert torch.equal(value, model_c.state_dict()[name]), name


def test_unknown_objective_names_the_stage_and_the_known_ones(records_file, tmp_path, registry):
    config = TrainConfig.model_validate(config_for(records_file, tmp_path / "run", steps=1))
    with pytest.raises(
        UnknownObjectiveError,
        match=r"stages.0.objective \(stage 'prefer'\): unknown objective 'pairwise'; "
        r"known: classification, distill, dpo, language_modeling$",
    ):
        Trainer(config, model_builder=build_tiny)
    assert Trainer(config, model_builder=build_tiny, objectives=registry).objectives is registry


def test_registry_refuses_a_taken_name(registry):
    with pytest.raises(ValueError, match="already registered: language_modeling"):
        OBJECTIVES.extended({"language_modeling": PairwiseRanking})
    assert sorted(registry) == ["classification", "distill", "dpo", "language_modeling", "pairwise"]
    assert sorted(OBJECTIVES) == ["classification", "distill", "dpo", "language_modeling"]


def test_cli_names_the_file_and_the_known_objectives_without_a_traceback(records_file, tmp_path):
    from typer.testing import CliRunner

    from ultra.cli.main import app

    path = tmp_path / "dpo.yaml"
    path.write_text(
        f"model: {{name_or_path: debug-tiny}}\noutput_dir: {tmp_path / 'out'}\n"
        f"data: {{pairs: {{kind: records, path: {records_file}}}}}\n"
        "stages: [{name: prefer, objective: ranking, train: ['*']}]\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["train", str(path)])
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert f"{path}: stages.0.objective (stage 'prefer'): unknown objective 'ranking'" in output
    assert "known: classification, distill, dpo, language_modeling" in output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()
