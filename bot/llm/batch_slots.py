"""What the batched engine schedules (bot/llm/batch_engine.py): requests, the sequences (slots)
they decode on, and the pure rules that pick a sequence for a request and find the prefix it can
reuse. No llama.cpp calls."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.llm.base import ChatResult, Sampling

SHARE_MIN = 32  # copy another sequence's cache when it holds this many more prompt tokens
WAIT_MIN = 64   # wait for a prefix another sequence is decoding when it saves this many

# --------------------------------------------------------------------------- requests


@dataclass
class Prepared:
    """What llama-cpp-python's chat handler would send: prompt tokens, stops and grammar."""

    prompt: list[int]
    stop: list[bytes]
    grammar: Any  # llama_cpp.llama_grammar.LlamaGrammar | None
    # The reply's opening its schema forces (bot/llm/sampling.py, forced_opening): decoded with
    # the prompt, in one step, instead of one generated token per step.
    prefill: list[int] = field(default_factory=list)
    prefill_text: bytes = b""


class Capture:
    """Stands in for a Llama while a chat handler runs, recording the completion it asks for."""

    verbose = False

    def __init__(self, model: Any) -> None:
        self._model = model

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return self._model.tokenize(text, add_bos, special)

    def create_completion(self, **kwargs: Any) -> Any:
        raise Captured(kwargs)


class Captured(Exception):
    def __init__(self, kwargs: dict[str, Any]) -> None:
        self.kwargs = kwargs


@dataclass(eq=False)
class Request:
    owner: object
    prepared: Prepared
    sampling: Sampling
    seed: int
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[ChatResult]
    cancelled: bool = False  # set from the event loop; read by the decode thread
    # decode-thread state
    slot: Slot | None = None
    feed: list[int] = field(default_factory=list)  # tokens to decode next
    completion: list[int] = field(default_factory=list)
    text: bytes = b""
    multibyte: int = 0
    evaluated: int = 0
    sampler: Any = None
    admitted: float = 0.0


@dataclass(eq=False)
class Slot:
    seq: int
    tokens: list[int] = field(default_factory=list)  # what this sequence's KV cache holds
    owner: object | None = None
    request: Request | None = None
    last_used: float = 0.0
    copying: bool = False  # its cells are a copy llama.cpp makes at the next llama_decode


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def choose_slot(slots: Sequence[Slot], owner: object, prompt: Sequence[int]) -> Slot | None:
    """The sequence a request of ``owner`` decodes on, or None when every one is busy."""
    idle = [s for s in slots if s.request is None]
    if not idle:
        return None
    for slot in idle:
        if slot.owner is owner:
            return slot
    unowned = [s for s in idle if s.owner is None]
    if unowned:
        return max(unowned, key=lambda s: (common_prefix(s.tokens, prompt), -s.last_used))
    return min(idle, key=lambda s: s.last_used)


def cached_prefix(slots: Sequence[Slot], prompt: Sequence[int], but: Slot | None = None
                  ) -> tuple[Slot | None, int]:
    """The sequence whose KV cache holds the longest beginning of ``prompt``, and its length.
    A sequence whose cells are still to be copied is no donor: copying from it would rely on
    llama.cpp applying queued stream copies in the order they were asked for."""
    best, share = None, 0
    for slot in slots:
        if slot is not but and not slot.copying:
            n = common_prefix(slot.tokens, prompt)
            if n > share:
                best, share = slot, n
    return best, share


def prefix_coming(slots: Sequence[Slot], request: Request, active: Sequence[Request]) -> bool:
    """True when a sequence now reading its prompt will soon hold at least WAIT_MIN more of
    ``request``'s prompt than any cache holds: decoding it once and copying it is cheaper than
    decoding it twice in the same steps (12 games opening on one item, repetitions of a
    scenario)."""
    prompt = request.prepared.prompt
    have = None
    for other in active:
        if len(other.feed) > 1:  # still reading: its slot will hold its whole prompt
            soon = common_prefix(other.prepared.prompt, prompt)
            if soon >= WAIT_MIN:
                if have is None:
                    have = cached_prefix(slots, prompt)[1]
                if soon - have >= WAIT_MIN:
                    return True
    return False
