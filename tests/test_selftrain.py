"""Self-training with DPO: our loss against the closed form and TRL's, the frozen reference, the
held-out reward margin, judges that drop and count what they cannot score (a real HTTP endpoint
on 127.0.0.1), resumable generation and exactly resumed DPO."""

from __future__ import annotations

import copy
import json
import math
import threading
from collections import defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

from data_zh import Labels, Media, Preference, Record, Turn, read_records, write_records
from ultra.config_io import ConfigError
from ultra.model import build_model
from ultra.selftrain import (
    Candidates,
    DPOSettings,
    GenerateSettings,
    JudgeSettings,
    create_judge,
    generate_candidates,
    judge_candidates,
    preference_train_config,
    read_candidates,
    split_held_out,
)
from ultra.selftrain.judges import JUDGES, RemoteImagesNotAllowedError, parse_scores
from ultra.train import Trainer, TrainingInterrupted
from ultra.train.objectives.dpo import REFERENCE_KEY, dpo_terms

QUESTIONS = ("该病灶是良性还是恶性？", "请判断这个乳腺病灶的良恶性。", "从超声表现看，此病灶为良性还是恶性？")
LABELS = ("benign", "malignant")
ANSWERS = {"benign": "良性", "malignant": "恶性"}
EVASIVE = "无法判断，请结合临床"


# the loss -------------------------------------------------------------------------------------
def test_dpo_loss_equals_the_closed_form_on_a_hand_computed_pair():
    """beta 0.5; policy gains +0.5 nats on the chosen answer and loses 0.5 on the rejected one:
    rewards +0.25 / -0.25, margin 0.5, loss log(1 + e^-0.5) = 0.474077. Tolerance: float64 eps."""
    policy_c, policy_r = torch.tensor([-2.0], dtype=torch.float64), torch.tensor([-3.0], dtype=torch.float64)
    ref_c, ref_r = torch.tensor([-2.5], dtype=torch.float64), torch.tensor([-2.5], dtype=torch.float64)
    terms = dpo_terms(policy_c, policy_r, ref_c, ref_r, beta=0.5)
    expected = math.log1p(math.exp(-0.5))
    tolerance = 8 * torch.finfo(torch.float64).eps
    assert abs(float(terms.losses[0]) - expected) <= tolerance, (
        f"diff {float(terms.losses[0]) - expected:.3e}"
    )
    assert float(terms.chosen_rewards[0]) == 0.25 and float(terms.rejected_rewards[0]) == -0.25
    assert float(terms.margins[0]) == 0.5
    # equal gains on both answers: no preference either way, loss log 2
    even = dpo_terms(policy_c, policy_c, ref_c, ref_c, beta=0.5)
    assert abs(float(even.losses[0]) - math.log(2)) <= tolerance


class _Identity:
    """What TRL's loss code asks of an accelerator on one process."""

    device = torch.device("cpu")

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    gather_for_metrics = gather


class _FixedLogProbs(torch.nn.Module):
    """Hands TRL's loss fixed per-token answer log-probs (zero outside the answer, as TRL's fused
    head gives): the cross-check is of the formula, on numbers both sides share."""

    def __init__(self, per_token: torch.Tensor) -> None:
        super().__init__()
        self.per_token = per_token

    def forward(self, **_: object) -> SimpleNamespace:
        zeros = torch.zeros_like(self.per_token)
        return SimpleNamespace(
            log_probs=self.per_token, entropy=zeros, mean_logits=zeros, is_top1=zeros.bool()
        )


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_dpo_loss_matches_trl_sigmoid_loss(beta):
    """TRL's own loss code (``DPOTrainer._compute_loss``, sigmoid, reverse KL, precomputed reference
    log-probs) called on a bare namespace: no DPOTrainer is built or run. Tolerance: float32 eps x 16."""
    trl = pytest.importorskip("trl", reason="trl is in the dpo extra")
    if not hasattr(trl.DPOTrainer, "_compute_loss"):
        pytest.skip(f"trl {trl.__version__} keeps its DPO loss elsewhere (this check reads trl 1.x)")
    generator = torch.Generator().manual_seed(int(beta * 10))
    pairs, length = 4, 6
    completion = torch.ones(2 * pairs, length + 1, dtype=torch.long)
    completion[:, :2] = 0  # the prompt
    completion[1, -2:] = 0  # a shorter answer
    per_token = -torch.rand(2 * pairs, length, generator=generator) * completion[:, 1:]
    reference = -3 * torch.rand(2 * pairs, generator=generator)
    policy = _FixedLogProbs(per_token)
    harness = SimpleNamespace(
        model=policy,
        accelerator=_Identity(),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=["sigmoid"],
        loss_weights=[1.0],
        beta=beta,
        use_weighting=False,
        _metrics=defaultdict(lambda: defaultdict(list)),
        _total_train_tokens=0,
        _tp_size=1,
    )
    inputs = {
        "input_ids": torch.zeros(2 * pairs, length + 1, dtype=torch.long),
        "attention_mask": torch.ones(2 * pairs, length + 1, dtype=torch.long),
        "completion_mask": completion,
        "ref_chosen_logps": reference[:pairs],
        "ref_rejected_logps": reference[pairs:],
    }
    theirs = trl.DPOTrainer._compute_loss(harness, policy, inputs, False)
    summed = per_token.sum(dim=1)
    ours = dpo_terms(summed[:pairs], summed[pairs:], reference[:pairs], reference[pairs:], beta)
    tolerance = 16 * torch.finfo(torch.float32).eps
    diff = abs(float(theirs) - float(ours.losses.mean()))
    assert diff <= tolerance, f"loss differs from TRL's by {diff:.3e}"
    margin_diff = abs(harness._metrics["train"]["rewards/margins"][0] - float(ours.margins.mean()))
    assert margin_diff <= tolerance, f"reward margin differs from TRL's by {margin_diff:.3e}"


# data -----------------------------------------------------------------------------------------
def _image(path: Path, label: str, index: int) -> str:
    """A 32 px image whose brightness follows the class (so labels and pixels agree)."""
    level = 200 if label == "benign" else 60
    Image.new("RGB", (32, 32), (level, (37 * index) % 255, level)).save(path)
    return path.name


def preference_records(folder: Path, count: int, offset: int = 0) -> list[Record]:
    """Pairs: the class answer preferred over an evasive one, each about its own image."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(offset, offset + count):
        label = LABELS[index % 2]
        name = _image(folder / f"image-{index}.png", label, index)
        records.append(
            Record(
                id=f"pair-{index}",
                source="toy",
                licence="CC0",
                specialty="breast",
                modality="US",
                language="zh",
                task="preference",
                media=Media(root=str(folder), images=[name]),
                conversations=[Turn(role="user", content=f"<image>\n{QUESTIONS[index % 3]}")],
                labels=Labels(classes=[label]),
                preference=Preference(
                    chosen=Turn(role="assistant", content=ANSWERS[label]),
                    rejected=Turn(role="assistant", content=EVASIVE),
                    judge="label",
                ),
                extra={"image_id": f"image-{index}"},
            )
        )
    return records


@pytest.fixture(scope="module")
def pair_files(tmp_path_factory):
    """Sixteen training pairs, eight held-out pairs on other images, one record without a pair."""
    root = tmp_path_factory.mktemp("pairs")
    train = preference_records(root / "images", 16)
    broken = train[0].derive(id="no-pair", preference=None)
    write_records([*train, broken], root / "train.jsonl")
    write_records(preference_records(root / "images", 8, offset=100), root / "held_out.jsonl")
    return root / "train.jsonl", root / "held_out.jsonl"


def build_tiny(_config=None):
    torch.manual_seed(0)
    return build_model("debug-tiny", pretrained=False)


def dpo_config(pair_files, output_dir: Path, steps: int, **changes):
    settings = DPOSettings(
        beta=0.5,
        max_steps=steps,
        batch_size=4,
        lr=2e-2,
        validate_every_steps=2,
        lora={"r": 4, "alpha": 8, "dropout": 0.0},
        **changes,
    )
    train, held_out = pair_files
    return preference_train_config(settings, "in-memory", train, held_out, output_dir)


# DPO through the trainer -----------------------------------------------------------------------
def test_dpo_raises_the_held_out_margin_and_never_moves_the_reference(pair_files, tmp_path):
    config = dpo_config(pair_files, tmp_path / "run", steps=8)
    model, processor = build_tiny()
    start = {name: value.clone() for name, value in model.state_dict().items()}
    trainer = Trainer(config, model_builder=lambda _: (model, processor), show_progress=False)
    result = trainer.run()

    margins = [row["reward_margin"] for row in result.validation]
    assert [row["step"] for row in result.validation] == [2, 4, 6, 8]
    assert margins[-1] > margins[0] > 0, f"held-out reward margins {margins}"
    assert result.validation[-1]["reward_accuracy"] > 0.5 and result.validation[-1]["pairs"] == 8
    assert result.skipped_records == ["no-pair"]

    reference = trainer.side_modules.modules[REFERENCE_KEY]
    for name, value in reference.state_dict().items():
        if "lora_" in name:
            if "lora_B" in name:  # LoRA starts as the identity: the reference is the start model
                assert not value.any(), name
            continue
        assert torch.equal(value, start[name.replace(".base_layer", "")]), f"reference moved: {name}"
    assert all(not parameter.requires_grad for parameter in reference.parameters())
    changed = [name for name, value in model.state_dict().items() if not torch.equal(value, start[name])]
    assert changed, "the policy did not train"
    assert (tmp_path / "run" / "final" / "config.json").exists()


def test_dpo_resumes_exactly_after_a_kill(pair_files, tmp_path):
    """Tolerance: exact equality (same ops, same order, CPU fp32); the frozen reference comes back
    from the checkpoint, not from the restarted process's model."""
    whole_model, processor = build_tiny()
    Trainer(
        dpo_config(pair_files, tmp_path / "whole", steps=4),
        model_builder=lambda _: (whole_model, processor),
        show_progress=False,
    ).run()

    parts = dpo_config(pair_files, tmp_path / "parts", steps=4, save_every_steps=2)
    killed, _ = build_tiny()
    with pytest.raises(TrainingInterrupted):
        Trainer(parts, model_builder=lambda _: (killed, processor), show_progress=False, stop_after=2).run()
    restarted, _ = build_tiny()
    with torch.no_grad():  # other starting weights: only the checkpoint can restore the run
        for parameter in restarted.parameters():
            parameter.add_(0.01)

    def builder(_):
        return restarted, processor

    result = Trainer(parts, model_builder=builder, show_progress=False).run(resume=True)
    assert result.stages[0]["steps"] == 4 and result.validation[-1]["step"] == 4
    for name, value in whole_model.state_dict().items():
        other = restarted.state_dict()[name]
        assert torch.equal(value, other), f"{name}: max diff {(value - other).abs().max():.3e}"


# generation ----------------------------------------------------------------------------------
def image_records_in(folder: Path, count: int) -> list[Record]:
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(count):
        label = LABELS[index % 2]
        name = _image(folder / f"scan-{index}.png", label, index)
        records.append(
            Record(
                id=f"img-{index}",
                source="toy",
                licence="CC0",
                specialty="breast",
                modality="US",
                language="zh",
                task="open_vqa",
                media=Media(root=str(folder), images=[name]),
                labels=Labels(classes=[label]),
            )
        )
    return records


def test_generation_resumes_after_a_kill_cut_mid_line(tmp_path, tiny_model):
    """The untrained debug model cannot ask (its outputs hold no 问题：), so every question comes
    from the template pool and the fallbacks are counted; a killed file continues by image."""
    from ultra.answerer import Answerer

    model, processor = tiny_model
    answerer = Answerer(copy.deepcopy(model), processor, allow_untrained=True)
    images = image_records_in(tmp_path / "images", 3)
    settings = GenerateSettings(
        questions_per_image=2, answers_per_question=3, question_max_new_tokens=6, answer_max_new_tokens=4
    )
    out = tmp_path / "candidates.jsonl"
    first = generate_candidates(answerer, images, out, settings, show_progress=False)
    assert (first.images, first.items, first.template_fallbacks) == (3, 6, 6)
    rows = read_candidates(out)
    assert [len(row.answers) for row in rows] == [3] * 6
    assert {row.question_source for row in rows} == {"template"}
    assert len({row.record.question for row in rows if row.record.extra["image_id"] == "img-0"}) == 2

    # the kill: image 0 complete (two lines), image 1's first line cut half way
    lines = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text(lines[0] + lines[1] + lines[2][: len(lines[2]) // 2], encoding="utf-8")
    again = generate_candidates(answerer, images, out, settings, show_progress=False)
    assert (again.resumed_images, again.items) == (1, 4)
    resumed = read_candidates(out)
    assert sorted(row.record.id for row in resumed) == sorted(row.record.id for row in rows)
    assert resumed[:2] == rows[:2], "finished images are kept, not regenerated"


# judges --------------------------------------------------------------------------------------
def candidates_for(images: list[Record], question: str, answers: list[str]) -> list[Candidates]:
    from ultra.selftrain.generate import _question_record

    return [Candidates(_question_record(image, 0, question), list(answers), "model") for image in images]


def test_label_judge_pairs_right_over_wrong_and_counts_ties_and_unjudgeable(tmp_path):
    images = image_records_in(tmp_path / "images", 4)
    items = candidates_for(images[:2], "该病灶是良性还是恶性？", ["良性", "恶性", "良性。"])
    items += candidates_for(images[2:3], "图像中是否可见病灶？", ["是", "是的", "是"])  # all right: a tie
    items += candidates_for(images[3:], "这是什么颜色？", ["红", "蓝", "绿"])  # labels cannot tell
    pairs, counts = judge_candidates(items, create_judge(JudgeSettings(name="label")), show_progress=False)
    assert counts.as_dict() | {"mean_score": None} == {
        "questions": 4,
        "pairs": 2,
        "dropped": {"tie": 1, "unjudgeable": 1},
        "mean_score": None,
    }
    assert counts.mean_score == pytest.approx(6 / 9)
    benign, malignant = pairs
    assert (benign.preference.chosen.content, benign.preference.rejected.content) == ("良性", "恶性")
    assert (malignant.preference.chosen.content, malignant.preference.rejected.content) == ("恶性", "良性")
    assert benign.task == "preference" and benign.preference.scores == (1.0, 0.0)
    assert "良性" in benign.preference.reason
    write_records(pairs, tmp_path / "pairs.jsonl")
    assert read_records(tmp_path / "pairs.jsonl") == pairs

    train, held_out = split_held_out(pairs + pairs[:1], fraction=0.5)
    assert {r.extra["image_id"] for r in train}.isdisjoint({r.extra["image_id"] for r in held_out})


class _Verdicts(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that answers each request with the next scripted reply."""

    replies: list[tuple[int, str]] = []
    bodies: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).bodies.append(json.loads(body))
        status, payload = type(self).replies.pop(0)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload.encode("utf-8"))

    def log_message(self, *_: object) -> None:
        return


def _completion(content: str) -> str:
    return json.dumps(
        {"choices": [{"message": {"role": "assistant", "content": content}}]}, ensure_ascii=False
    )


def test_openai_judge_drops_and_counts_malformed_verdicts_from_a_real_endpoint(tmp_path):
    _Verdicts.replies = [
        (200, _completion('评审结果：{"scores": [9, 2, 5], "reason": "回答1与图像一致"}')),
        (200, _completion("我认为第一个回答最好。")),  # prose, no JSON
        (200, _completion('{"scores": [9, 2]}')),  # wrong count
        (200, _completion('{"scores": ["高", 1, 2]}')),  # not numbers
        (200, "<html>gateway error</html>"),  # not a completion at all
        (500, '{"error": "overloaded"}'),
        (200, _completion('{"scores": [3, 3, 3], "reason": "一样"}')),  # a tie
    ]
    _Verdicts.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Verdicts)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = JudgeSettings(
            name="openai",
            options={
                "base_url": f"http://127.0.0.1:{server.server_port}/v1",
                "api_key_env": None,
                "timeout_s": 10,
            },
        )
        with pytest.raises(RemoteImagesNotAllowedError, match="--allow-remote-images"):
            create_judge(settings)
        judge = create_judge(settings, allow_remote_images=True)
        images = image_records_in(tmp_path / "patient-wang-images", 7)
        items = [
            item
            for image in images
            for item in candidates_for([image], "该病灶是良性还是恶性？", ["良性", "恶性", "不确定"])
        ]
        pairs, counts = judge_candidates(items, judge, show_progress=False)
    finally:
        server.shutdown()
        server.server_close()
    assert counts.questions == 7 and counts.pairs == 1
    assert dict(counts.dropped) == {"unparseable": 4, "request_failed": 1, "tie": 1}
    (pair,) = pairs
    assert (pair.preference.chosen.content, pair.preference.rejected.content) == ("良性", "恶性")
    assert pair.preference.judge == "openai" and pair.preference.reason == "回答1与图像一致"
    sent = json.dumps(_Verdicts.bodies, ensure_ascii=False)
    assert "data:image/png;base64," in sent
    assert "patient-wang" not in sent and "scan-" not in sent, "file names must never leave the machine"


@pytest.mark.parametrize("name", JUDGES.names())
def test_every_judge_scores_each_answer_of_a_real_item(name: str, tmp_path) -> None:
    """Every registry entry as ``create_judge`` builds it, on one image: the label judge from the
    class, the model judge with the embedded model, the openai judge against a real local server."""
    from tests.chat_server import chat_server, completion

    (item,) = candidates_for(image_records_in(tmp_path, 1), "该病灶是良性还是恶性？", ["良性", "恶性"])
    options = {"label": {}, "model": {"model": "tiny-zh"}}

    def verdict(path: str, headers: dict, body: dict) -> tuple[int, str]:
        return 200, completion('{"scores": [8, 1], "reason": "回答1正确"}')

    with chat_server(verdict) as (url, bodies):
        options["openai"] = {"base_url": url, "api_key_env": None, "timeout_s": 10}
        judge = create_judge(JudgeSettings(name=name, options=options[name]), allow_remote_images=True)
        (result,) = judge.judge([item])
    assert isinstance(judge, JUDGES[name]) and judge.name == name
    assert result.problem is None and len(result.scores) == 2 and all(map(math.isfinite, result.scores))
    if name != "model":  # the label says benign; the scripted endpoint agrees
        assert result.scores[0] > result.scores[1]
    assert len(bodies) == (name == "openai")


def test_an_unknown_judge_is_a_config_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"judge.name: unknown judge 'gpt'; known: label, model, openai$"):
        create_judge(JudgeSettings(name="gpt"))


def test_openai_judge_never_sends_dicom(tmp_path):
    judge = create_judge(
        JudgeSettings(name="openai", options={"base_url": "http://127.0.0.1:9/v1", "api_key_env": None}),
        allow_remote_images=True,
    )
    record = image_records_in(tmp_path, 1)[0].derive(
        media={"root": str(tmp_path), "dicom": [{"path": "study.dcm"}]}
    )
    item = candidates_for([record], "是否可见病灶？", ["是", "否"])[0]
    assert judge.judge_one(item).problem == "not_deidentified"
    assert parse_scores("no json here", 2).problem == "unparseable"


def test_cli_names_a_missing_step_and_a_bad_config_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from ultra.cli.main import app

    config = tmp_path / "selftrain.yaml"
    config.write_text(
        f"images: {{kind: folder, path: {tmp_path / 'images'}}}\noutput_dir: {tmp_path / 'out'}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["selftrain", "judge", str(config)])
    assert result.exit_code == 1 and "run `ultra selftrain generate` first" in " ".join(result.output.split())
    result = CliRunner().invoke(app, ["selftrain", "dpo", str(config)])
    assert result.exit_code == 1 and "no training pairs" in result.output
    config.write_text(
        "images: {kind: folder}\noutput_dir: out\ngenerate: {answers_per_question: 1}\n", encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["selftrain", "run", str(config)])
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and "images.path" in output and "generate.answers_per_question" in output
    assert "Traceback" not in result.output


def test_cli_runs_a_round_on_real_busi_images_and_a_resumed_run_skips_it(shared_data, tmp_path):
    """The embedded model asks about three selftrain_pool images, the label judge pairs, DPO trains
    two steps; the resumed run finds the round finished and does nothing again."""
    from typer.testing import CliRunner

    from ultra.cli.main import app

    config = tmp_path / "selftrain.yaml"
    config.write_text(
        f"images: {{kind: busi, path: {shared_data / 'busi'}, split: selftrain_pool, max_images: 3}}\n"
        "generate: {questions_per_image: 2, answers_per_question: 4, temperature: 2.0, batch_size: 24}\n"
        "dpo: {max_steps: 2, batch_size: 2, held_out_fraction: 0.0}\n"
        f"output_dir: {tmp_path / 'out'}\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["selftrain", "run", str(config), "--no-progress"])
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in (tmp_path / "out" / "rounds.jsonl").read_text().splitlines()]
    judged = row["judge"]
    assert judged["questions"] == 6 and judged["pairs"] >= 1
    assert judged["pairs"] + sum(judged["dropped"].values()) == judged["questions"]
    pairs = read_records(tmp_path / "out" / "round-1" / "pairs.jsonl")
    assert len(pairs) == judged["pairs"] and all(p.task == "preference" and p.preference for p in pairs)
    assert row["dpo"]["steps"] == 2 and Path(row["dpo"]["curves"]).stat().st_size > 10_000
    assert (Path(row["model"]) / "config.json").exists()
    again = CliRunner().invoke(app, ["selftrain", "run", str(config), "--resume", "--no-progress"])
    assert again.exit_code == 0 and "round 1:" in again.output
    assert len((tmp_path / "out" / "rounds.jsonl").read_text().splitlines()) == 1


def test_local_model_judge_prefers_the_answer_its_model_finds_likelier(shared_data, tmp_path):
    """The embedded model as judge: scores are its mean per-token log-likelihoods (checked against
    the front door directly), an empty answer scores lowest, and the pair follows the scores."""
    from ultra.answerer import Answerer, Request
    from ultra.media import read_record_images
    from ultra.selftrain.judges import EMPTY_ANSWER_SCORE

    image = image_records_in(tmp_path, 1)[0].derive(
        media={"root": str(shared_data / "busi"), "images": ["images/malignant/malignant (10).png"]}
    )
    (item,) = candidates_for([image], "该病灶是良性还是恶性？", ["恶性", "良性", ""])
    judge = create_judge(JudgeSettings(name="model", options={"model": "tiny-zh"}))
    (verdict,) = judge.judge([item])
    request = Request(item.record.question, read_record_images(item.record))
    expected = [
        likelihood.mean
        for likelihood in Answerer.load("tiny-zh").log_likelihoods([(request, "恶性"), (request, "良性")])
    ]
    tolerance = 1e-5  # float32 logits summed over a few tokens, batched vs one by one
    assert max(abs(a - b) for a, b in zip(verdict.scores[:2], expected, strict=True)) <= tolerance, (
        verdict.scores
    )
    assert verdict.scores[2] == EMPTY_ANSWER_SCORE
    pairs, counts = judge_candidates([item], judge, show_progress=False)
    best = "恶性" if expected[0] > expected[1] else "良性"
    assert counts.pairs == 1 and pairs[0].preference.chosen.content == best
    assert pairs[0].preference.rejected.content == ""
