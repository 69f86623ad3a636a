"""Text generation backends for QA generation: one small interface, a local model or an HTTP endpoint.

A backend turns a prompt into text or raises ``BackendError``; the pipeline decides what to retry.
``data_zh`` never imports ``ultra``: the local backend runs any transformers causal LM itself, and
``ultra serve`` (or vLLM, Ollama, …) is reached like any OpenAI-compatible endpoint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol


class BackendError(RuntimeError):
    """A call that produced no text: ``retryable`` for timeouts and server errors, not for 4xx."""

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class TextBackend(Protocol):
    """What the QA generator needs from a language model."""

    name: str

    def complete(self, prompt: str) -> str:
        """The model's reply to one user prompt; raises ``BackendError`` when there is none."""
        ...


@dataclass
class OpenAIBackend:
    """Any OpenAI-compatible ``/chat/completions`` endpoint (``ultra serve``, vLLM, Ollama, OpenAI)."""

    base_url: str
    model: str = "default"
    api_key: str | None = None
    timeout_s: float = 60.0
    max_tokens: int = 1024
    temperature: float = 0.2

    @property
    def name(self) -> str:
        return f"openai:{self.base_url} ({self.model})"

    def complete(self, prompt: str) -> str:
        import requests

        url = self.base_url.rstrip("/") + "/chat/completions"
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        try:
            response = requests.post(url, json=body, headers=headers, timeout=self.timeout_s)
        except requests.Timeout:
            raise BackendError(f"{url}: no reply within {self.timeout_s:g} s") from None
        except requests.RequestException as error:
            raise BackendError(f"{url}: {type(error).__name__}: {error}") from None
        if response.status_code >= 400:
            raise BackendError(
                f"{url}: HTTP {response.status_code}: {response.text[:200]}",
                retryable=response.status_code >= 500 or response.status_code == 429,
            )
        try:
            return str(response.json()["choices"][0]["message"]["content"])
        except (ValueError, KeyError, IndexError, TypeError) as error:
            raise BackendError(f"{url}: not a chat completion ({type(error).__name__}: {error})") from None


@dataclass
class TransformersBackend:
    """A local causal LM folder (any transformers model with a tokenizer), greedy decoding on CPU or GPU."""

    path: str | Path
    max_new_tokens: int = 1024
    device: str = "cpu"

    @property
    def name(self) -> str:
        return f"local:{self.path}"

    @cached_property
    def _parts(self) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(self.path))
            model = AutoModelForCausalLM.from_pretrained(str(self.path)).to(self.device).eval()
        except (OSError, ValueError) as error:
            raise BackendError(f"{self.path}: cannot load a causal LM: {error}", retryable=False) from None
        return tokenizer, model

    def complete(self, prompt: str) -> str:
        import torch

        tokenizer, model = self._parts
        if tokenizer.chat_template:
            ids = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt"
            )
            ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        else:
            ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        ids = ids.to(self.device)
        with torch.no_grad():
            output = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=self.max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id
                if tokenizer.pad_token_id is not None
                else tokenizer.eos_token_id,
            )
        return tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True)


@dataclass
class ReplayBackend:
    """Responses recorded earlier (a JSON list of ``{"match": …, "response": …}``), for dry runs and
    tests: the first entry whose ``match`` occurs in the prompt answers it."""

    entries: list[dict[str, str]] = field(default_factory=list)
    name: str = "replay"

    @classmethod
    def from_file(cls, path: str | Path) -> ReplayBackend:
        try:
            entries = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise BackendError(f"{path}: cannot read replay file: {error}", retryable=False) from None
        if not isinstance(entries, list) or not all({"match", "response"} <= set(e) for e in entries):
            raise BackendError(
                f"{path}: expected a JSON list of {{match, response}} objects", retryable=False
            )
        return cls(entries, name=f"replay:{path}")

    def complete(self, prompt: str) -> str:
        for entry in self.entries:
            if entry["match"] in prompt:
                return entry["response"]
        raise BackendError("replay: no recorded response matches this prompt", retryable=False)


def backend_from_spec(
    spec: str, model: str | None = None, api_key: str | None = None, timeout_s: float = 60.0
) -> TextBackend:
    """``local:PATH``, ``openai:URL`` or ``replay:FILE`` as a backend (the CLI's ``--backend``)."""
    kind, _, target = spec.partition(":")
    if not target:
        raise ValueError(f"backend {spec!r}: use local:PATH, openai:URL or replay:FILE")
    if kind == "local":
        return TransformersBackend(target)
    if kind == "openai":
        return OpenAIBackend(target, model=model or "default", api_key=api_key, timeout_s=timeout_s)
    if kind == "replay":
        return ReplayBackend.from_file(target)
    raise ValueError(f"backend {spec!r}: unknown kind {kind!r}; use local:PATH, openai:URL or replay:FILE")
