"""A scripted ChatBackend for tests: queued replies, recorded calls, delays, errors, timeouts.

Replies are consumed in order. Each is one of:

- a string: the reply text;
- a ChatResult: returned as is (to script token counts or finish reasons);
- an exception instance: raised (e.g. ``ModelError("HTTP 500")``);
- a callable taking the messages and returning a string or ChatResult (to answer from context);
- ``Slow(reply, seconds)``: that reply after a delay.

Delays are slept in a worker thread, like the real backend's blocking calls, so a delay longer
than the call's timeout raises ModelTimeout exactly where the real backend would.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.errors import ModelError, ModelTimeout
from bot.llm.base import ChatResult, Message, Sampling


@dataclass(frozen=True)
class Slow:
    """A scripted reply that takes ``seconds`` to arrive."""

    reply: Reply
    seconds: float


Reply = str | ChatResult | BaseException | Callable[[Sequence[Message]], str | ChatResult] | Slow


@dataclass(frozen=True)
class FakeCall:
    """What one ``chat`` call was given."""

    messages: list[dict[str, str]]
    schema: Mapping[str, Any] | None
    sampling: Sampling
    timeout: float | None


class FakeBackend:
    """ChatBackend that replays scripted replies and records every call."""

    def __init__(
        self,
        replies: Iterable[Reply] = (),
        *,
        name: str = "fake",
        delay: float = 0.0,
        timeout_s: float = 30.0,
        default: Reply | None = None,
        probe_error: BaseException | None = None,
    ) -> None:
        self.name = name
        self.probe_error = probe_error  # what ``probe`` raises (a dead backend), if anything
        self.probes = 0
        self.delay = delay
        self.timeout_s = timeout_s
        self.default = default
        self.calls: list[FakeCall] = []
        self.closed = False
        self._replies: deque[Reply] = deque(replies)

    def push(self, *replies: Reply) -> None:
        """Queue more replies."""
        self._replies.extend(replies)

    @property
    def pending(self) -> int:
        """Scripted replies not yet used."""
        return len(self._replies)

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        schema: Mapping[str, Any] | None = None,
        sampling: Sampling = Sampling(),
        timeout: float | None = None,
    ) -> ChatResult:
        if self.closed:
            raise ModelError(f"{self.name}: the backend is closed")
        self.calls.append(FakeCall([dict(m) for m in messages], schema, sampling, timeout))
        if self._replies:
            reply = self._replies.popleft()
        elif self.default is not None:
            reply = self.default
        else:
            raise ModelError(
                f"fake backend {self.name}: no scripted reply left for call #{len(self.calls)}"
            )
        seconds = self.delay
        if isinstance(reply, Slow):
            reply, seconds = reply.reply, reply.seconds
        limit = self.timeout_s if timeout is None else timeout
        started = time.perf_counter()
        if seconds > 0:
            try:
                await asyncio.wait_for(asyncio.to_thread(time.sleep, seconds), limit)
            except TimeoutError:
                raise ModelTimeout(f"{self.name}: no reply within {limit:g} s",
                                   seconds=limit) from None
        if isinstance(reply, BaseException):
            raise reply
        if callable(reply):
            reply = reply(messages)
        if isinstance(reply, ChatResult):
            return reply
        if not isinstance(reply, str):
            raise TypeError(f"fake backend {self.name}: a reply must be text, got {reply!r}")
        return ChatResult(text=reply, seconds=time.perf_counter() - started, finish_reason="stop")

    async def probe(self) -> None:
        """Counts the probe; raises ``probe_error`` when set. Uses no scripted reply."""
        self.probes += 1
        if self.closed:
            raise ModelError(f"{self.name}: the backend is closed")
        if self.probe_error is not None:
            raise self.probe_error

    async def aclose(self) -> None:
        self.closed = True
