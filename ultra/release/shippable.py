"""The licence gate of shippable weights: a model that ships may only have learned from data whose
licence allows any use, and its card lists every source it learned from.

The trainer records, per data source, the sources and licences of the records it trained on
(``summary.json`` → ``training_data``); exporting for the package reads that record and refuses
a run that saw non-commercial data (laparoscopy frames from Cholec80, PromptCBLUE), naming them.
What ships is also bounded in size: :data:`MAX_RELEASE_MB` for the model and its student together.
"""

from __future__ import annotations

import json
from pathlib import Path

from data_zh.licences import is_non_commercial

MAX_RELEASE_MB = 40.0
"""The weights that ship (model and screening student together) take at most this many MB."""


class LicenceError(ValueError):
    """A run that may not ship: it trained on non-commercial data, or it has no provenance record."""


def read_training_data(run_dir: Path) -> list[dict]:
    """The run's ``training_data`` rows (``summary.json``); a run without them cannot be checked."""
    path = Path(run_dir) / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise LicenceError(f"{path}: cannot read the run's summary ({error})") from None
    rows = summary.get("training_data")
    if not rows:
        raise LicenceError(
            f"{path}: no training_data record, so the licences of its training data cannot be checked "
            "(retrain with this version of ultra)"
        )
    return rows


def check_shippable(training_data: list[dict]) -> None:
    """Raise ``LicenceError`` naming every data source whose records carry a non-commercial licence."""
    refused = [row for row in training_data if is_non_commercial(str(row.get("licence", "")))]
    if refused:
        named = "; ".join(
            f"{row.get('data_source', '?')} ({row['source']}, {row['records']} records: {row['licence']})"
            for row in refused
        )
        raise LicenceError(f"refusing to export shippable weights: non-commercial training data in {named}")


def sources_markdown(training_data: list[dict]) -> str:
    """The card's table of every source the model learned from, with record counts and licences."""
    lines = ["| data source | records from | records | licence |", "| --- | --- | --- | --- |"]
    for row in training_data:
        lines.append(f"| {row['data_source']} | {row['source']} | {row['records']} | {row['licence']} |")
    return "\n".join(lines)
