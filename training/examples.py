"""Chat examples (JSON lines) and their encoding with an assistant-only loss mask.

A training file holds one example per line: ``{"messages": [{"role": "system"|"user"|
"assistant", "content": "..."}, ...]}``, the same message lists the bot sends its backend
(built by bot/negotiation/prompts.py), so training and serving see one format.

The loss covers assistant tokens only: the model should learn to answer, not to predict the
system prompt or the other side's lines. Few chat templates mark assistant spans for
transformers (``{% generation %}``), so the spans are found by rendering: the text of messages
[:i] with the generation prompt is a prefix of the text of messages[:i+1], and what lies between
is assistant i's reply with its end-of-turn marker. The full conversation is tokenized once and a
token is trained when it starts inside such a span (character offsets from the fast tokenizer).

An assistant message may carry ``"train": false``: it stays in the conversation as context but
takes no loss. `haggle train data` marks so the dataset turns a served model must not imitate (a
formal accept with no words, an act the reply grammar cannot express); see training/data.py.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import DataError

ROLES = ("system", "user", "assistant")
IGNORE = -100  # the label torch's cross_entropy skips


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE where no loss is taken


def read_chat_jsonl(path: str | Path) -> list[list[dict[str, str]]]:
    """Read and check a JSONL file of chat examples; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; build it first with `haggle train data`")
    examples = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg})") from exc
            examples.append(check_messages(obj.get("messages") if isinstance(obj, dict) else None,
                                           where))
    if not examples:
        raise DataError(f"{path} holds no examples")
    return examples


def check_messages(messages: Any, where: str) -> list[dict[str, str]]:
    """Validate one example's message list and return it as plain dicts."""
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: expected {{\"messages\": [{{\"role\": ..., \"content\": ...}}, ...]}}")
    out = []
    for j, msg in enumerate(messages):
        if not isinstance(msg, dict) or msg.get("role") not in ROLES \
                or not isinstance(msg.get("content"), str):
            raise DataError(f"{where}: message {j} must be {{\"role\": one of {', '.join(ROLES)}, "
                            f"\"content\": a string}}, got {msg!r:.120}")
        clean = {"role": msg["role"], "content": msg["content"]}
        if "train" in msg:
            if msg["role"] != "assistant" or not isinstance(msg["train"], bool):
                raise DataError(f"{where}: message {j}: \"train\" is a true/false flag of "
                                "assistant messages only")
            if not msg["train"]:
                clean["train"] = False
        out.append(clean)
    if out[0]["role"] == "assistant":
        raise DataError(f"{where}: the first message is the assistant's; start with a system or "
                        "user message so the reply has something to answer")
    if not any(is_trained(m) for m in out):
        raise DataError(f"{where}: no assistant message to train on, so nothing to learn from")
    return out


def is_trained(message: dict[str, str]) -> bool:
    """Whether a message's tokens carry loss: assistant messages not marked ``"train": false``."""
    return message["role"] == "assistant" and message.get("train", True) is not False


def render(tokenizer, messages: Sequence[dict[str, str]], *, generation_prompt: bool = False) -> str:
    """The chat template's text for ``messages`` (only role and content reach the template)."""
    plain = [{"role": m["role"], "content": m["content"]} for m in messages]
    return tokenizer.apply_chat_template(plain, tokenize=False,
                                         add_generation_prompt=generation_prompt)


def assistant_spans(tokenizer, messages: Sequence[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its trained assistant replies."""
    text = render(tokenizer, messages)
    spans = []
    for i, msg in enumerate(messages):
        if not is_trained(msg):
            continue
        before = render(tokenizer, messages[:i], generation_prompt=True)
        upto = render(tokenizer, messages[: i + 1])
        if not (upto.startswith(before) and text.startswith(upto)):
            raise DataError("the model's chat template does not render conversations "
                            "prefix-stably, so assistant turns cannot be located for the loss "
                            "mask; use a base model with a ChatML/Llama-style template")
        spans.append((len(before), len(upto)))
    return text, spans


def encode(tokenizer, messages: Sequence[dict[str, str]], max_seq_len: int) -> Encoded | None:
    """Token ids and labels for one example, truncated to ``max_seq_len``.

    None when truncation leaves no assistant token (the caller counts such drops).
    The rendered text already carries any BOS the template wants, so the tokenizer adds none.
    """
    text, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids = list(enc["input_ids"])[:max_seq_len]
    offsets = list(enc["offset_mapping"])[:max_seq_len]
    labels = [tok if any(lo <= start < hi for lo, hi in spans) else IGNORE
              for tok, (start, _end) in zip(ids, offsets, strict=False)]
    # The first position has no preceding context to predict it from.
    if len(ids) < 2 or all(x == IGNORE for x in labels[1:]):
        return None
    return Encoded(input_ids=ids, labels=labels)


def encode_all(tokenizer, examples: Sequence[Sequence[dict[str, str]]],
               max_seq_len: int) -> tuple[list[Encoded], int]:
    """Encode every example; returns the encodings and how many were dropped."""
    out = []
    for messages in examples:
        enc = encode(tokenizer, messages, max_seq_len)
        if enc is not None:
            out.append(enc)
    return out, len(examples) - len(out)
