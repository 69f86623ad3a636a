"""The two Chinese prompts, read from editable text files (``prompts/*.txt`` or a folder of your own)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
PROMPT_FILES = {"extract": "extract_facts.txt", "write": "write_qa.txt"}


@dataclass(frozen=True)
class Prompts:
    """Stage 1 holds ``{text}``, stage 2 holds ``{facts}``; filled by plain replacement, so the
    JSON examples' braces need no escaping."""

    extract: str
    write: str

    @classmethod
    def load(cls, folder: str | Path | None = None) -> Prompts:
        """The shipped prompts, or the files of the same names in ``folder``."""
        base = Path(folder) if folder is not None else PROMPTS_DIR
        texts = {}
        for key, name in PROMPT_FILES.items():
            path = base / name
            if not path.is_file():
                raise FileNotFoundError(f"{path}: prompt file not found")
            texts[key] = path.read_text(encoding="utf-8")
        prompts = cls(**texts)
        for text, slot, name in ((prompts.extract, "{text}", "extract"), (prompts.write, "{facts}", "write")):
            if slot not in text:
                raise ValueError(f"{base / PROMPT_FILES[name]}: the prompt must contain {slot}")
        return prompts

    def extract_prompt(self, text: str) -> str:
        return self.extract.replace("{text}", text.strip())

    def write_prompt(self, facts: str) -> str:
        return self.write.replace("{facts}", facts)
