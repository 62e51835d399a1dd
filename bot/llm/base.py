"""The ChatBackend protocol every model backend implements, and the types it speaks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

Message = Mapping[str, str]  # {"role": "system"|"user"|"assistant", "content": "..."}


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters for one agent ([agents.NAME] in config.toml)."""

    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 40
    repeat_penalty: float = 1.1
    max_tokens: int = 160
    seed: int | None = None


@dataclass(frozen=True)
class ChatResult:
    """One completion. Token counts are None where the backend cannot tell."""

    text: str
    prompt_tokens: int | None = None
    prompt_tokens_evaluated: int | None = None  # of prompt_tokens, those actually evaluated
    completion_tokens: int | None = None
    seconds: float = 0.0  # wall time inside the backend call
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ChatBackend(Protocol):
    """An async chat-completion backend.

    ``schema`` is a JSON schema the reply must follow (grammar-constrained where the backend
    supports it); None means free text. Implementations never block the event loop and raise
    ``bot.errors.ModelError`` with a message that says what to do when they fail.
    """

    name: str

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        schema: Mapping[str, Any] | None = None,
        sampling: Sampling = Sampling(),
        timeout: float | None = None,
    ) -> ChatResult: ...

    async def probe(self) -> None:
        """Check once, cheaply, that the backend can answer at all (llama.cpp: load the model;
        an HTTP endpoint: a one-token completion). Raises ModelError saying why not."""
        ...

    async def aclose(self) -> None: ...
