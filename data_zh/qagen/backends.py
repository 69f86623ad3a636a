"""Text generation backends for QA generation: one small interface, a local model or an HTTP endpoint.

A backend turns a prompt into text or raises ``BackendError``; the pipeline decides what to retry.
``data_zh`` never imports ``ultra``: the local backend runs any transformers causal LM itself, and
``ultra serve`` (or vLLM, Ollama, …) is reached like any OpenAI-compatible endpoint through
``data_zh.openai_client``. ``BACKENDS`` names the kinds of the CLI's ``--backend KIND:TARGET``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from data_zh.openai_client import ChatError, OpenAIClient
from fusion.registry import Registry, UnknownEntryError


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
        client = OpenAIClient(self.base_url, api_key=self.api_key, timeout_s=self.timeout_s)
        try:
            return client.chat(
                self.model,
                [{"role": "user", "content": prompt}],
                max_tokens=self.max_tokens,
                temperature=self.temperature,
            )
        except ChatError as error:
            raise BackendError(str(error), retryable=error.retryable) from None


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


@dataclass(frozen=True)
class BackendOptions:
    """What the CLI passes beside ``--backend`` (only the HTTP backend reads it)."""

    model: str | None = None
    api_key: str | None = None
    timeout_s: float = 60.0


BackendFactory = Callable[[str, BackendOptions], TextBackend]

BACKENDS: Registry[BackendFactory] = Registry(
    "QA backend",
    {
        "local": lambda target, options: TransformersBackend(target),
        "openai": lambda target, options: OpenAIBackend(
            target, model=options.model or "default", api_key=options.api_key, timeout_s=options.timeout_s
        ),
        "replay": lambda target, options: ReplayBackend.from_file(target),
    },
)
"""Backend kinds by name: ``local:MODEL_DIR``, ``openai:BASE_URL``, ``replay:FILE``."""


def backend_from_spec(
    spec: str,
    model: str | None = None,
    api_key: str | None = None,
    timeout_s: float = 60.0,
    backends: Registry[BackendFactory] = BACKENDS,
) -> TextBackend:
    """``KIND:TARGET`` as a backend (the CLI's ``--backend``); a bad spec is a ``ValueError``."""
    kind, _, target = spec.partition(":")
    try:
        factory = backends[kind]
    except UnknownEntryError as error:
        raise ValueError(f"backend {spec!r}: {error}") from None
    if not target:
        raise ValueError(f"backend {spec!r}: {kind} needs a target after the colon ({kind}:TARGET)")
    return factory(target, BackendOptions(model, api_key, timeout_s))
