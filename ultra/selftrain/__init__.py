"""Self-training with DPO (STLLaVA-Med): the policy asks and answers, a judge prefers, DPO aligns.

``generate`` (questions and K sampled answers per image), ``judges`` (a registry: label, local
model, OpenAI-compatible endpoint), ``pairs`` (preference records, drops counted), ``run`` (rounds;
the ``dpo`` objective itself lives in ``ultra.train.objectives.dpo``).
"""

from ultra.selftrain.config import (
    DPOSettings,
    GenerateSettings,
    ImageSource,
    JudgeSettings,
    SelftrainConfig,
    load_selftrain_config,
)
from ultra.selftrain.generate import (
    Candidates,
    GenerateReport,
    generate_candidates,
    read_candidates,
)
from ultra.selftrain.judges import JUDGES, Judge, Verdict, create_judge
from ultra.selftrain.pairs import (
    JudgeCounts,
    judge_candidates,
    preference_record,
    sft_records,
    split_held_out,
)
from ultra.selftrain.run import NoPairsError, preference_train_config, run_dpo, run_round, run_selftrain
from ultra.selftrain.sources import IMAGE_SOURCES, SELFTRAIN_NAMES, image_records

__all__ = [
    "IMAGE_SOURCES",
    "JUDGES",
    "SELFTRAIN_NAMES",
    "Candidates",
    "DPOSettings",
    "GenerateReport",
    "GenerateSettings",
    "ImageSource",
    "Judge",
    "JudgeCounts",
    "JudgeSettings",
    "NoPairsError",
    "SelftrainConfig",
    "Verdict",
    "create_judge",
    "generate_candidates",
    "image_records",
    "judge_candidates",
    "load_selftrain_config",
    "preference_record",
    "preference_train_config",
    "read_candidates",
    "run_dpo",
    "run_round",
    "run_selftrain",
    "sft_records",
    "split_held_out",
]
