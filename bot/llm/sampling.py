"""Sampling shared by both in-process llama.cpp backends (bot/llm/llamacpp.py per seat,
bot/llm/batch_engine.py batched): the grammar-checked sampler, and the opening a reply's JSON
schema forces, which both decode with the prompt instead of drawing it token by token."""

from __future__ import annotations

import ctypes
import json
import re
from collections.abc import Mapping
from typing import Any

import llama_cpp
import llama_cpp._internals as llama_internals
import numpy as np


def forced_opening(schema: Mapping[str, Any] | None) -> str:
    """The text a reply to ``schema`` starts with whatever the model writes: ``{"KEY": `` and,
    for a string value, its opening quote and the words its pattern begins with, where KEY is
    the object's first required property as llama-cpp-python's JSON-schema grammar orders them
    (required ones first, in their order). The spacing is json.dumps's, which the grammar allows
    (optional spaces) and which the prompts render earlier replies in
    (bot/negotiation/prompts.py), so the cache stays append-only.
    "" for any other shape (anyOf, no required property, not an object)."""
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        return ""
    properties = schema.get("properties")
    required = schema.get("required") or []
    if not isinstance(properties, Mapping):
        return ""
    first = next((key for key in properties if key in required), None)
    if first is None:
        return ""
    value = properties[first]
    opening = "{" + json.dumps(first) + ": "
    if (isinstance(value, Mapping) and value.get("type") == "string"
            and not {"enum", "const", "format"} & set(value)):
        opening += '"' + literal_prefix(value.get("pattern"))
    return opening


# The words a string pattern must begin with ("^How[^$0-9...]{0,40}..." -> "How"): letters,
# apostrophes and spaces after the anchor, short of a character a quantifier applies to.
_LITERAL = re.compile(r"\^([A-Za-z' ]*)(.?)")


def literal_prefix(pattern: Any) -> str:
    """The text every string matching ``pattern`` begins with, as far as it is plain letters,
    apostrophes and spaces ("" when it opens with a class, a group or anything else)."""
    if not isinstance(pattern, str):
        return ""
    m = _LITERAL.match(pattern)
    if m is None:
        return ""
    text, after = m.groups()
    return text[:-1] if after and after in "*+?{" else text


class GrammarCheckedSampler:
    """Grammar-constrained sampling that checks one token instead of the whole vocabulary.

    llama-cpp-python puts the grammar sampler first in its chain, so every generated token pays
    a grammar check of all ~50k vocabulary entries. This samples the way llama.cpp's own
    common sampler (llama-cli, llama-server) does: draw from the unconstrained chain, check just
    that token against the grammar, and only when the grammar rejects it, mask the whole
    vocabulary and draw again. Replies still always match the grammar. A token the model
    would pick anyway is kept; otherwise it is drawn from the grammar-masked distribution.
    """

    def __init__(self, chain: Any, grammar: Any, n_vocab: int) -> None:
        self.chain = chain  # internals.LlamaSampler without grammar (penalties, top-k, ..., dist)
        self.grammar = grammar  # internals.LlamaSampler holding only the grammar
        self.n_vocab = n_vocab
        self._all = llama_internals.LlamaTokenDataArray(n_vocab=n_vocab)
        self._one = llama_internals.LlamaTokenDataArray(n_vocab=1)
        # The model's own log-likelihood of what it wrote (raw logits, before temperature and
        # the grammar): how candidate replies are ranked (bot/negotiation/llm_agent.py).
        self.logprob_sum = 0.0
        self.n_tokens = 0

    def _draw(self, logits: np.ndarray, *, masked: bool) -> int:
        cur = self._all
        cur.copy_logits(logits)
        if masked:
            llama_cpp.llama_sampler_apply(self.grammar.sampler, ctypes.byref(cur.candidates))
        llama_cpp.llama_sampler_apply(self.chain.sampler, ctypes.byref(cur.candidates))
        return int(cur.candidates_data.id[cur.candidates.selected])

    def _allowed(self, token: int) -> bool:
        one = self._one
        one.candidates_data.id[0] = token
        one.candidates_data.logit[0] = 1.0
        one.candidates_data.p[0] = 0.0
        one.candidates.size = 1
        one.candidates.sorted = False
        llama_cpp.llama_sampler_apply(self.grammar.sampler, ctypes.byref(one.candidates))
        return bool(np.isfinite(one.candidates_data.logit[0]))

    def sample(self, ctx: Any, idx: int = -1) -> int:
        pointer = llama_cpp.llama_get_logits_ith(ctx.ctx, idx)
        logits = np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))
        token = self._draw(logits, masked=False)
        if not self._allowed(token):
            token = self._draw(logits, masked=True)
        top = float(logits.max())
        self.logprob_sum += float(logits[token]) - top - float(np.log(np.exp(logits - top).sum()))
        self.n_tokens += 1
        llama_cpp.llama_sampler_accept(self.grammar.sampler, token)
        llama_cpp.llama_sampler_accept(self.chain.sampler, token)
        return token

    def force(self, token: int) -> bool:
        """Take ``token`` as written without drawing it (a reply's forced opening): False, and
        nothing taken, when the grammar does not allow it."""
        if not self._allowed(token):
            return False
        llama_cpp.llama_sampler_accept(self.grammar.sampler, token)
        llama_cpp.llama_sampler_accept(self.chain.sampler, token)
        return True

    def close(self) -> None:
        self.chain.close()
        self.grammar.close()
