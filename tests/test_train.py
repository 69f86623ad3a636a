"""Training machinery on tiny models: stage parameter selection, exact resume, skipped records."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data_zh import Labels, Media, Record, write_records
from data_zh.schema import qa_turns
from tests.numerics import assert_close
from ultra.config_io import ConfigError
from ultra.model import build_model, load_model, save_checkpoint
from ultra.model.modeling import UltraForConditionalGeneration
from ultra.train import (
    TrainableSelectionError,
    TrainConfig,
    Trainer,
    TrainingInterrupted,
    apply_trainable,
    load_train_config,
    stage_order,
)
from ultra.train.checkpoint import list_checkpoints
from ultra.train.config import ModelSource

ANSWERS = {"benign": "良性", "malignant": "恶性", "normal": "正常"}


def build_tiny(config: TrainConfig | None = None, seed: int = 0):
    """The random-init ``debug-tiny`` preset (tiny CNN + ConvNeXt fusion, 2-layer Qwen2), built
    offline; the same weights for the same seed, as a resumed process would rebuild them."""
    torch.manual_seed(seed)
    return build_model("debug-tiny", pretrained=False)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Sixteen labelled 40x40 images (class = brightness pattern) as unified records and LLaVA JSONL."""
    root = tmp_path_factory.mktemp("train-data")
    rng = np.random.default_rng(0)
    records, llava = [], []
    for index in range(16):
        label = list(ANSWERS)[index % 3]
        pixels = rng.integers(0, 80, (40, 40, 3), dtype=np.uint8)
        if label != "normal":
            pixels[10:30, 10:30] += 120 if label == "malignant" else 60
        name = f"img {index}.png"
        Image.fromarray(pixels).save(root / name)
        turns = qa_turns("该病灶是良性还是恶性？", ANSWERS[label])
        records.append(
            Record(
                id=f"toy-{index}",
                source="toy",
                licence="CC0",
                specialty="breast",
                modality="US",
                language="zh",
                task="closed_vqa",
                media=Media(root=str(root), images=[name]),
                conversations=turns,
                answer_type="closed",
                labels=Labels(classes=[label]),
                split="train",
            )
        )
        llava.append(
            {
                "id": f"toy-{index}",
                "image": name,
                "conversations": [
                    {"from": "human", "value": "<image>\n这是什么？"},
                    {"from": "gpt", "value": ANSWERS[label]},
                ],
            }
        )
    write_records(records, root / "records.jsonl")
    (root / "llava.jsonl").write_text(
        "\n".join(json.dumps(x, ensure_ascii=False) for x in llava), encoding="utf-8"
    )
    return root


def make_config(data_dir, output_dir, stages, **extra) -> TrainConfig:
    data = {
        "toy": {"kind": "records", "path": str(data_dir / "records.jsonl")},
        "toy_llava": {"kind": "llava", "path": str(data_dir / "llava.jsonl"), "image_root": str(data_dir)},
    }
    return TrainConfig.model_validate(
        {
            "model": {"name_or_path": "in-memory"},
            "data": data,
            "stages": stages,
            "output_dir": str(output_dir),
            **extra,
        }
    )


def snapshot(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def changed(before: dict, model) -> set[str]:
    after = dict(model.named_parameters())
    return {name for name, value in before.items() if name in after and not torch.equal(value, after[name])}


def run_one_stage(data_dir, tmp_path, stage: dict):
    """Run a single stage for two steps on a fresh tiny model; return (model before, model after)."""
    model, processor = build_tiny()
    before = snapshot(model)
    config = make_config(data_dir, tmp_path / "run", [{"batch_size": 4, "max_steps": 2, "lr": 1e-2, **stage}])
    trainer = Trainer(config, model_builder=lambda _: (model, processor), show_progress=False)
    trainer.run()
    return before, model


STAGES = {
    "stage0-encoders": {
        "name": "encoders",
        "objective": "classification",
        "train": ["model.vision_tower.encoders.*"],
        "sources": ["toy"],
        "augmentation": {},
    },
    "stage0-llm": {"name": "llm", "train": ["model.language_model.*"]},
    "alignment": {
        "name": "alignment",
        "train": ["model.vision_tower.projectors.*", "model.vision_tower.fusion_logits"],
    },
}


@pytest.mark.parametrize("kind", sorted(STAGES))
def test_each_stage_changes_exactly_its_parameters(data_dir, tmp_path, kind):
    stage = STAGES[kind]
    before, model = run_one_stage(data_dir, tmp_path, stage)
    expected = {
        name for name in before if any(__import__("fnmatch").fnmatchcase(name, p) for p in stage["train"])
    }
    moved = changed(before, model)
    # every selected tensor that got a gradient moved; nothing else moved
    assert moved <= expected, f"unexpected changes: {sorted(moved - expected)[:5]}"
    assert len(moved) >= 0.9 * len(expected), f"only {len(moved)} of {len(expected)} selected tensors changed"
    assert moved, "the stage changed nothing"


@pytest.mark.parametrize("kind, trained", [("alignment", True), ("stage0-llm", False)])
def test_a_stage_training_the_projectors_marks_them_trained(data_dir, tmp_path, kind, trained):
    """The mark the Answerer checks is set when the projectors start learning, so validation
    during the run does not warn that the answers ignore the image."""
    _, model = run_one_stage(data_dir, tmp_path, STAGES[kind])
    assert model.config.projectors_trained is trained


def test_a_run_resumed_after_the_projector_stage_still_marks_them_trained(data_dir, tmp_path):
    stages = [
        {**STAGES["alignment"], "batch_size": 4, "max_steps": 2, "sources": ["toy"]},
        {**STAGES["stage0-llm"], "batch_size": 4, "max_steps": 4, "sources": ["toy"]},
    ]
    config = make_config(data_dir, tmp_path / "run", stages, save_every_steps=2)
    model, processor = build_tiny()
    with pytest.raises(TrainingInterrupted):
        Trainer(config, model_builder=lambda _: (model, processor), show_progress=False, stop_after=4).run()
    fresh, _ = build_tiny()  # a new process: the mark is not in the rebuilt starting model
    result = Trainer(config, model_builder=lambda _: (fresh, processor), show_progress=False).run(resume=True)
    assert [row["samples"] for row in result.stages] == [2 * 4], "only the LLM stage's last steps ran"
    assert load_model(result.final_dir)[0].config.projectors_trained


def test_instruction_stage_trains_lora_and_projectors_only(data_dir, tmp_path):
    stage = {
        "name": "instruction",
        "train": ["*lora_*", "model.vision_tower.projectors.*"],
        "lora": {"r": 4, "alpha": 8, "module": "model.language_model", "dropout": 0.0},
        "merge_lora": False,
    }
    before, model = run_one_stage(data_dir, tmp_path, stage)
    after = dict(model.named_parameters())
    lora = {name for name in after if "lora_" in name}
    assert lora and any(not torch.all(after[name] == 0) for name in lora if "lora_B" in name)
    for name, value in before.items():
        parent, _, leaf = name.rpartition(".")
        base_name = f"{parent}.base_layer.{leaf}"  # LoRA wraps the targeted layer as base_layer
        current = after.get(name, after.get(base_name))
        assert current is not None, name
        if name.startswith("model.vision_tower.projectors."):
            continue
        assert torch.equal(value, current), f"{name} changed but the stage does not train it"
    assert any(
        not torch.equal(before[n], after[n]) for n in before if n.startswith("model.vision_tower.projectors.")
    )
    # the saved adapter on the untouched base reproduces the trained model
    base, processor = build_tiny()
    save_checkpoint(base, processor, tmp_path / "base")
    restored, _ = load_model(tmp_path / "base", adapter=tmp_path / "run" / "adapters" / "instruction")
    batch = processor.collate(
        [
            processor.encode_example(
                [
                    {"role": "user", "content": "<image>\n良性还是恶性？"},
                    {"role": "assistant", "content": "良性"},
                ],
                [Image.open(data_dir / "img 1.png").convert("RGB")],
            )
        ]
    )
    merged, _ = load_model(
        tmp_path / "base", adapter=tmp_path / "run" / "adapters" / "instruction", merge=True
    )
    model.eval()
    with torch.no_grad():
        expected = model(**batch).logits
        actual = restored(**batch).logits
        folded = merged(**batch).logits
    # same weights, same ops: identical; merged folds B@A into W, so float32 rounding, once per layer
    assert torch.equal(actual, expected), f"max |diff| {(actual - expected).abs().max().item():.3g}"
    assert_close(folded, expected, stages=merged.config.text_config.num_hidden_layers, name="merged")


def test_merged_lora_stage_exports_plain_weights(data_dir, tmp_path):
    stage = {
        "name": "instruction",
        "train": ["*lora_*"],
        "lora": {"r": 4, "alpha": 8, "module": "model.language_model", "dropout": 0.0},
    }
    before, model = run_one_stage(data_dir, tmp_path, stage)
    after = dict(model.named_parameters())
    assert set(after) == set(before), "merging must restore the original parameter names"
    q = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(before[q], after[q]), "merged LoRA must change the attention weights"
    assert torch.equal(before["model.language_model.norm.weight"], after["model.language_model.norm.weight"])
    reloaded = UltraForConditionalGeneration.from_pretrained(tmp_path / "run" / "final")
    assert torch.equal(reloaded.state_dict()[q], model.state_dict()[q])


def test_resume_after_step_5_equals_uninterrupted(data_dir, tmp_path):
    """Tolerance: exact equality (atol 0) — same ops in the same order on CPU, fp32."""
    stages = [
        {
            "name": "llm",
            "train": ["model.language_model.*", "model.vision_tower.projectors.*"],
            "batch_size": 3,
            "max_steps": 10,
            "lr": 5e-3,
            "sources": ["toy_llava"],
        }
    ]
    whole = make_config(data_dir, tmp_path / "whole", stages, save_every_steps=5)
    model_a, processor = build_tiny()
    Trainer(whole, model_builder=lambda _: (model_a, processor), show_progress=False).run()

    parts = make_config(data_dir, tmp_path / "parts", stages, save_every_steps=5)
    model_b, _ = build_tiny()
    with pytest.raises(TrainingInterrupted):
        Trainer(parts, model_builder=lambda _: (model_b, processor), show_progress=False, stop_after=5).run()
    assert [p.name for p in list_checkpoints(tmp_path / "parts")] == ["step-0000005-llm"]
    model_c, _ = build_tiny()  # a fresh process would rebuild the starting model
    result = Trainer(parts, model_builder=lambda _: (model_c, processor), show_progress=False).run(
        resume=True
    )
    state_a, state_c = model_a.state_dict(), model_c.state_dict()
    assert state_a.keys() == state_c.keys()
    for name in state_a:
        assert torch.equal(state_a[name], state_c[name]), name
    assert result.stages[0]["samples"] == 5 * 3, "the resumed run must only do steps 6-10"
    assert result.loss_curve.is_file()


def test_resume_inside_the_encoder_stage_keeps_the_augmented_order(data_dir, tmp_path):
    stages = [
        {
            "name": "encoders",
            "objective": "classification",
            "train": ["model.vision_tower.encoders.*"],
            "sources": ["toy"],
            "batch_size": 4,
            "max_steps": 4,
            "augmentation": {},
        },
        {
            "name": "llm",
            "train": ["model.language_model.*"],
            "batch_size": 4,
            "max_steps": 2,
            "sources": ["toy"],
        },
    ]
    model_a, processor = build_tiny()
    Trainer(
        make_config(data_dir, tmp_path / "a", stages),
        model_builder=lambda _: (model_a, processor),
        show_progress=False,
    ).run()
    config = make_config(data_dir, tmp_path / "b", stages)
    model_b, _ = build_tiny()
    with pytest.raises(TrainingInterrupted):
        Trainer(config, model_builder=lambda _: (model_b, processor), show_progress=False, stop_after=2).run()
    model_c, _ = build_tiny()
    Trainer(config, model_builder=lambda _: (model_c, processor), show_progress=False).run(resume=True)
    for name, value in model_a.state_dict().items():
        assert torch.equal(value, model_c.state_dict()[name]), name


def test_unreadable_record_is_reported_by_id_and_skipped(data_dir, tmp_path, caplog):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "bad.png").write_bytes(b"not a png at all")
    good = (data_dir / "img 0.png").read_bytes()
    (broken / "good.png").write_bytes(good)
    lines = [
        {
            "id": "bad-one",
            "image": "bad.png",
            "conversations": [{"from": "human", "value": "<image>\n?"}, {"from": "gpt", "value": "是"}],
        },
        {
            "id": "missing-one",
            "image": "gone.png",
            "conversations": [{"from": "human", "value": "<image>\n?"}, {"from": "gpt", "value": "否"}],
        },
        {
            "id": "good-one",
            "image": "good.png",
            "conversations": [{"from": "human", "value": "<image>\n?"}, {"from": "gpt", "value": "否"}],
        },
    ]
    (broken / "data.jsonl").write_text(
        "\n".join(json.dumps(x, ensure_ascii=False) for x in lines), encoding="utf-8"
    )
    config = TrainConfig.model_validate(
        {
            "model": {"name_or_path": "in-memory"},
            "data": {
                "mixed": {"kind": "llava", "path": str(broken / "data.jsonl"), "image_root": str(broken)}
            },
            "stages": [
                {"name": "llm", "train": ["model.language_model.norm.*"], "batch_size": 2, "max_steps": 2}
            ],
            "output_dir": str(tmp_path / "out"),
        }
    )
    model, processor = build_tiny()
    with caplog.at_level(logging.WARNING):
        result = Trainer(config, model_builder=lambda _: (model, processor), show_progress=False).run()
    assert "bad-one" in result.skipped_records
    assert "record missing-one skipped" in caplog.text and "gone.png" in caplog.text
    assert "record bad-one skipped" in caplog.text
    assert result.stages[0]["samples"] > 0


def test_unreadable_image_in_a_classification_stage_is_reported_the_same_way(data_dir, tmp_path, caplog):
    """Both built-in objectives report failed items through the run's one failure log."""
    from data_zh import read_records

    records = read_records(data_dir / "records.jsonl")[:6]
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    broken = records[0].model_copy(
        update={"id": "bad-image", "media": Media(root=str(tmp_path), images=["bad.png"])}
    )
    write_records([broken, *records[1:]], tmp_path / "records.jsonl")
    config = TrainConfig.model_validate(
        {
            "model": {"name_or_path": "in-memory"},
            "data": {"toy": {"kind": "records", "path": str(tmp_path / "records.jsonl")}},
            "stages": [
                {
                    "name": "encoders",
                    "objective": "classification",
                    "train": ["model.vision_tower.projectors.*"],
                    "batch_size": 3,
                    "max_steps": 2,
                }
            ],
            "output_dir": str(tmp_path / "out"),
        }
    )
    model, processor = build_tiny()
    with caplog.at_level(logging.WARNING):
        result = Trainer(config, model_builder=lambda _: (model, processor), show_progress=False).run()
    assert result.skipped_records == ["bad-image"]
    assert "record bad-image skipped:" in caplog.text
    assert result.stages[0]["samples"] == 2 * 3 - 1


def test_stage_order_is_seeded_and_covers_every_item():
    first = stage_order(7, 21, seed=3)
    assert first == stage_order(7, 21, seed=3)
    assert first != stage_order(7, 21, seed=4)
    assert sorted(first[:7]) == list(range(7)) and sorted(first[7:14]) == list(range(7))


def test_pattern_that_matches_nothing_names_the_pattern():
    model, _ = build_tiny()
    with pytest.raises(TrainableSelectionError, match="model.vison_tower"):
        apply_trainable(model, ["model.vison_tower.*"])


def test_config_errors_name_the_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "model: {name_or_path: tiny-zh}\noutput_dir: out\ndata: {a: {kind: records, path: x}}\n"
        "stages: [{name: s, train: ['*'], batch_size: 0}]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"stages\.0\.batch_size"):
        load_train_config(path)
    path.write_text(
        "model: {name_or_path: tiny-zh}\noutput_dir: out\ndata: {a: {kind: records, path: x}}\n"
        "stages: [{name: s, train: ['*'], sources: [b]}]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="uses data source 'b'"):
        load_train_config(path)


def test_training_on_the_heldout_wordings_is_refused(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(
        "model: {name_or_path: tiny-zh}\noutput_dir: out\ndata: {busi: {kind: busi, path: x}}\n"
        "stages: [{name: s, train: ['*']}]\n",
        encoding="utf-8",
    )
    for wordings in ("train", "train-v2"):
        assert load_train_config(path, [f"data.busi.wordings={wordings}"]).data["busi"].wordings == wordings
    with pytest.raises(ConfigError, match=r"\['busi'\] use the held-out wordings"):
        load_train_config(path, ["data.busi.wordings=heldout"])


@pytest.mark.parametrize("mode", ["weighted", "concat"])
def test_fuse_encoded_equals_the_fusion_forward(mode):
    from fusion import FusionConfig, VisionFusion
    from ultra.train.supervision import fuse_encoded

    torch.manual_seed(0)
    fusion = VisionFusion(
        FusionConfig(encoders=["tiny-cnn", "tiny-convnext"], hidden_size=16, grid=(2, 2), mode=mode)
    )
    with torch.no_grad():
        if fusion.fusion_logits is not None:
            fusion.fusion_logits.add_(torch.tensor([0.3, -0.2]))
        fusion.eval()
        pixels = [torch.randn(3, 3, 32, 32), torch.randn(3, 3, 32, 32)]
        torch.testing.assert_close(fuse_encoded(fusion, fusion.encode_each(pixels)), fusion(pixels))


def test_cached_image_features_train_like_the_pixel_path(data_dir, tmp_path):
    """A stage with a frozen vision tower encodes each image once; the weights it reaches equal
    those of the same stage run through the pixels every step (to float32 rounding)."""
    results = []
    for cache in (True, False):
        stage = {
            "name": "llm",
            "train": ["model.language_model.*"],
            "batch_size": 4,
            "max_steps": 3,
            "lr": 1e-2,
            "sources": ["toy"],
            "cache_frozen_image_features": cache,
        }
        model, processor = build_tiny()
        config = make_config(data_dir, tmp_path / f"cache-{cache}", [stage])
        Trainer(config, model_builder=lambda _, m=model, p=processor: (m, p), show_progress=False).run()
        results.append(model.state_dict())
    # float32 sums run in another order on the two paths (one batched encoder call vs one per
    # step), and BLAS kernels differ between CPUs; three Adam steps at lr 1e-2 carry that to
    # ~1e-5 (1.41e-5 measured on another machine): 9 stages (3 x forward, backward, update) of
    # 64 eps allow 6.9e-5.
    for name, value in results[0].items():
        assert_close(value, results[1][name], stages=9, name=name)


def test_ci_smoke_tiny_zh_config_runs_end_to_end(shared_data, tmp_path):
    """README/CI: `ultra train configs/tiny-zh.yaml --max-steps 3` on the real data."""
    import os
    import subprocess
    import sys

    repo_root = Path(__file__).resolve().parents[1]
    if shared_data.resolve() != (repo_root.parent / "shared" / "data").resolve():
        pytest.skip("configs/tiny-zh.yaml reads ../shared/data beside the checkout")
    out = tmp_path / "smoke"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "ultra", "--quiet", "train", "configs/tiny-zh.yaml", "--max-steps", "3"]
    result = subprocess.run(
        [*command, "--output-dir", str(out), "--no-progress"],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    stages = load_train_config(repo_root / "configs" / "tiny-zh.yaml").stages
    assert [row["steps"] for row in summary["stages"]] == [3] * len(stages)
    assert (out / "final" / "model.safetensors").is_file() and (out / "loss_curve.png").is_file()
    reloaded, _ = load_model(out / "final")
    assert next(reloaded.parameters()).dtype == torch.float32  # loads (fp16 on disk) as asked


def test_source_filters_rebalance_and_strip_media(data_dir):
    from ultra.train import DataSource, load_source

    base = {"kind": "records", "path": str(data_dir / "records.jsonl")}
    normal = load_source(DataSource(**base, classes=["normal"], repeat=2))
    assert len(normal) == 2 * 5 and all(r.labels.classes == ["normal"] for r in normal)
    text = load_source(DataSource(**base, text_only=True, max_records=4))
    assert len(text) == 4 and all(
        r.media.count == 0 and "<image>" not in r.conversations[0].content for r in text
    )


def test_task_filter_keeps_only_the_named_tasks():
    from ultra.train import DataSource, load_source

    every = load_source(DataSource(kind="busi_question_types"))
    stated = load_source(DataSource(kind="busi_question_types", tasks=["closed_vqa"]))
    assert {r.task for r in every} == {"closed_vqa", "open_vqa"}  # answer-form and stated exchanges
    assert {r.task for r in stated} == {"closed_vqa"}
    assert len(stated) == sum(r.task == "closed_vqa" for r in every)
    with pytest.raises(ValueError, match=r"unknown task\(s\) \['nope'\]"):
        DataSource(kind="busi_question_types", tasks=["nope"])


def test_source_kinds_name_registry_entries_and_the_old_words_still_load(shared_data, tmp_path):
    from ultra.train import DataSource, load_source

    busi = str(shared_data / "busi")
    old = load_source(DataSource(kind="busi", path=busi, split="val", max_records=30))
    new = load_source(DataSource(kind="busi_instructions", path=busi, split="val", max_records=30))
    assert [r.id for r in old] == [r.id for r in new] and {r.split for r in new} == {"val"}
    known = "busbra_labels, busbra_vqa, busi, busi_instructions"
    with pytest.raises(ValueError, match=f"unknown data source kind 'imagenet'; known: {known}"):
        DataSource(kind="imagenet", path=busi)
    with pytest.raises(ValueError, match=r"a busi_vqa data source needs a path \(a BUSI-layout folder"):
        DataSource(kind="busi_vqa")
    with pytest.raises(ValueError, match=r"nowhere: not found \(busi_vqa reads"):
        load_source(DataSource(kind="busi_vqa", path=str(tmp_path / "nowhere")))


def test_overrides_change_a_recipe_for_one_run(tmp_path):
    from ultra.config_io import apply_overrides

    recipe = Path(__file__).resolve().parents[1] / "configs" / "tiny-zh.yaml"
    base = load_train_config(recipe)
    changed = load_train_config(
        recipe,
        [
            "stages.0.epochs=40",
            "data.busi.phrasings=2",
            "data.extra_qtypes={kind: busi_question_types, tasks: [closed_vqa]}",
            "stages.1.sources=[busi, extra_qtypes]",
        ],
    )
    assert base.stages[0].epochs == 80 and changed.stages[0].epochs == 40
    assert changed.data["busi"].phrasings == 2 and base.data["busi"].phrasings == 3
    assert changed.data["extra_qtypes"].tasks == ["closed_vqa"] and changed.stages[1].sources == [
        "busi",
        "extra_qtypes",
    ]
    assert changed.data["dicom"] == base.data["dicom"]
    data = {"a": [{"b": 1}]}
    assert apply_overrides(data, ["a.0.b=2"]) == {"a": [{"b": 2}]} and data == {"a": [{"b": 1}]}  # a copy
    assert apply_overrides(data, ["a.+0={b: 0}", "a.+2={b: 9}"]) == {"a": [{"b": 0}, {"b": 1}, {"b": 9}]}
    inserted = load_train_config(recipe, ["stages.+0={name: first, objective: classification, train: ['*']}"])
    assert [stage.name for stage in inserted.stages] == ["first", *(stage.name for stage in base.stages)]
    for bad, message in [
        ("stages.5.epochs=1", "stages has no item 5"),
        ("stages.+5={name: x}", "stages has 2 items, no place"),
        ("data.+0={kind: busi_question_types}", r"\+0 inserts, so it must be the last key after a list"),
        ("stages.0.epochs", "expected dotted.path=VALUE"),
        ("output_dir.x=1", "output_dir is not a mapping or list"),
        ("stages.0.epochs=[1", "not valid YAML"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_train_config(recipe, [bad])
    with pytest.raises(ConfigError, match=r"stages\.0\.epochs"):  # the value still validates
        load_train_config(recipe, ["stages.0.epochs=-1"])


def test_image_size_builds_the_preset_at_another_input_size(tmp_path):
    from ultra.train.runner import build_model

    config = TrainConfig(
        model={"name_or_path": "debug-tiny", "image_size": 48},
        data={"q": {"kind": "busi_question_types"}},
        stages=[{"name": "s", "train": ["*"]}],
        output_dir=str(tmp_path),
    )
    model, _ = build_model(config)
    assert [spec.input_size for spec in model.config.vision.resolved_encoders()] == [48, 48]
    default, _ = build_model(config.model_copy(update={"model": ModelSource(name_or_path="debug-tiny")}))
    assert [spec.input_size for spec in default.config.vision.resolved_encoders()] == [32, 32]
    folder = config.model_copy(update={"model": ModelSource(name_or_path=str(tmp_path), image_size=48)})
    with pytest.raises(ConfigError, match="applies to a preset built fresh"):
        build_model(folder)
