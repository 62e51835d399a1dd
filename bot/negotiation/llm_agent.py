"""The LLM negotiator, in two policies (``policy`` in [agents.NAME]):

- ``llm``: the model chooses the act and the price and writes the utterance (AgreeMate's
  "manager and generator" design); the guard only protects the reservation price.
- ``hybrid``: a concession policy (policy.py) chooses the act and the price; the model only
  writes the words for that move (Xia et al. 2024's offer generator + LLM narrator).

Each turn: build the messages (prompts.py), ask the backend for a reply constrained by the
reply JSON schema, parse it, and check it. A reply that is malformed, states a price its
structured field does not carry, or leaks the prompt is re-asked once (``max_repairs``) with
the problem spelled out; if it is still unusable, or the backend fails (timeout, HTTP error,
empty output), a rule-based fallback turn (llm) or a template narration of the policy's move
(hybrid) is played and counted (a hybrid agent with ``candidates`` and ``rephrase`` first
draws a round of candidates begun with other words, bot/negotiation/openers.py); a backend
failure also marks the turn ``model_failed``, and a
negotiation whose agent's model keeps failing ends as an error (runner.Negotiation), never as a
result credited to the model. Every turn then passes the guard, so no reply can cross the
agent's reservation price.

The backend is anything with the ChatBackend shape (bot/llm/base.py): ``await
backend.chat(messages, schema=..., sampling=..., timeout=...)`` returning an object with
``text`` and token counts. Optional ``count_tokens(messages)`` and ``n_ctx`` let the agent trim
old turns before a prompt outgrows the context window.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import replace
from typing import Any

from bot.errors import ContextOverflow, ModelError, TurnError
from bot.negotiation.agents import DialogueState, RuleAgent, template_utterance, words_only
from bot.negotiation.guard import guard_turn, stated_prices, utterance_problem
from bot.negotiation.line_reader import LineReader, chance
from bot.negotiation.narration import narration_findings
from bot.negotiation.openers import openers_for
from bot.negotiation.personality import DEFAULT_PERSONALITY, Personality
from bot.negotiation.policy import ConcessionPolicy
from bot.negotiation.prompts import (
    BRIEF_AFTER_PRICE,
    BRIEF_BEFORE_PRICE,
    PRICED_REPLY_ACTS,
    REPLY_ACTS,
    SENTENCE_BUDGETS,
    around_price,
    build_messages,
    directive,
    money,
    narration_schema,
    opening_message,
    parse_narration,
    parse_reply,
    reply_schema,
    system_prompt,
)
from bot.negotiation.turns import Act, Turn

log = logging.getLogger(__name__)

# Words that only appear in an utterance when the model parrots its instructions.
_LEAK_MARKERS = re.compile(
    r"private goal|never reveal|these instructions|system prompt|json object|\"act\"|"
    r"\"utterance\"|reply with one|as an ai\b|language model|not usable|say something new|"
    r"answer again", re.I)
_SHINGLE = 6  # a run of this many words copied from the system prompt is a leak
_PARROT = 6   # ... or, copied from the other side's messages, parroting


_normal = words_only  # utterances compare without prices: same words, new price = a repeat


def _copies(said: str, source: str, n: int) -> bool:
    """Whether ``said`` contains a run of ``n`` consecutive words of ``source``."""
    words = source.split()
    return any(" ".join(words[i:i + n]) in said for i in range(len(words) - n + 1))


def prompt_leak(utterance: str, system_text: str) -> str | None:
    """Why ``utterance`` leaks the prompt, or None."""
    m = _LEAK_MARKERS.search(utterance)
    if m:
        return f"the utterance repeats the instructions ({m.group(0)!r})"
    if _copies(_normal(utterance), _normal(system_text), _SHINGLE):
        return "the utterance copies the instructions"
    return None


# Acts that answer an offer: offered to the model only once the counterpart has made one.
_ANSWERS = frozenset({Act.ACCEPT, Act.REJECT, Act.QUIT})


def allowed_acts(state: DialogueState) -> list[Act]:
    """The acts the grammar allows now: nothing can be accepted, rejected or walked away from
    before the counterpart has named a price."""
    return [a for a in REPLY_ACTS if a not in _ANSWERS or state.their_offer is not None]


# Named in a turn's problems (and a template's guard) when the reply budget cut its candidates.
REPLY_BUDGET = "reply budget"


# Which passing candidate a hybrid agent says: the model's likeliest (all drawn), the shortest
# (all drawn; ties: the likeliest), the first, or the one a reader fit on blind readings scores
# highest (all drawn; bot/negotiation/line_reader.py).
PICKS = ("likeliest", "shortest", "first", "reader")


class LLMAgent:
    def __init__(self, name: str, backend: Any, *, sampling: Any = None,
                 personality: Personality = DEFAULT_PERSONALITY,
                 cot: bool = False, max_repairs: int = 1, timeout: float | None = None,
                 fallback: RuleAgent | None = None, policy: ConcessionPolicy | None = None,
                 candidates: int = 1, pick: str = "likeliest", sentences: int | None = None,
                 rephrase: bool = False, reply_budget_s: float | None = None,
                 reader: LineReader | None = None, reader_floor: float | None = None) -> None:
        self.name = name
        self.backend = backend
        self.sampling = sampling
        self.personality = personality
        self.cot = cot
        self.max_repairs = max_repairs
        self.timeout = timeout
        # the reply budget the prompt must leave room for: the sampling's, when it has one
        self.max_tokens = getattr(sampling, "max_tokens", None) or 160
        self.fallback = fallback or RuleAgent(f"{name}-fallback", seed=0)
        self.policy = policy
        # hybrid: narrations sampled per turn; the best one that passes every check is said
        self.candidates = max(1, int(candidates))
        if pick not in PICKS:
            raise ValueError(f"pick must be one of {', '.join(PICKS)}, not {pick!r}")
        self.pick = pick  # "first": the first passing candidate is said, the rest not drawn
        if (pick == "reader" or reader_floor is not None) and reader is None:
            raise ValueError('pick "reader" and reader_floor need the line reader (LineReader.load())')
        self.reader = reader
        # a passing candidate the reader gives a lower chance of reading sensible fails too
        self.reader_floor = reader_floor
        if sentences not in SENTENCE_BUDGETS:
            raise ValueError(f"sentences must be one of {SENTENCE_BUDGETS}, not {sentences!r}")
        self.sentences = sentences  # the hybrid reply budget (prompts.narration_pattern)
        # when no candidate passes: a second round, each begun with a word people begin the
        # move with that this agent has not (bot/negotiation/openers.py); its turn is "repaired"
        self.rephrase = rephrase
        # a person waiting: the reply comes within this many seconds of the turn's start (hybrid,
        # with candidates): candidates not finished by then are dropped, the rephrased round runs
        # only while its round one's time again still fits; none passing, the template is said
        self.reply_budget_s = reply_budget_s
        self.stats = {"turns": 0, "repaired": 0, "fallback": 0, "model_failed": 0, "over_budget": 0}

    # ---- prompting

    def _build(self, state: DialogueState, keep_last: int | None, extra: str | None) -> list[dict[str, str]]:
        return build_messages(state.scenario, state.role, state.turns, personality=self.personality,
                              cot=self.cot, max_turns=state.max_turns, keep_last=keep_last,
                              directive=extra, hybrid=self.policy is not None)

    async def _messages(self, state: DialogueState, keep_last: int | None,
                        extra: str | None = None) -> list[dict[str, str]]:
        """The prompt for this turn, trimmed (oldest exchanges first) to fit the context."""
        messages = self._build(state, keep_last, extra)
        count = getattr(self.backend, "count_tokens", None)
        n_ctx = getattr(self.backend, "n_ctx", None)
        if count is None or not isinstance(n_ctx, int):
            return messages
        keep = len(state.turns) if keep_last is None else keep_last
        while keep > 2 and await count(messages) + self.max_tokens > n_ctx:
            keep -= 2  # drop the oldest exchange; the summary line keeps both standing offers
            messages = self._build(state, keep, extra)
        return messages

    async def _ask(self, messages: list[dict[str, str]], schema: dict[str, Any],
                   sampling: Any = None) -> Any:
        kwargs: dict[str, Any] = {"schema": schema, "timeout": self.timeout}
        sampling = sampling if sampling is not None else self.sampling
        if sampling is not None:
            kwargs["sampling"] = sampling
        return await self.backend.chat(messages, **kwargs)

    def _candidate_sampling(self, k: int) -> Any:
        """The sampling of candidate ``k``: the agent's own for the first, another seed after."""
        if k == 0 or self.sampling is None or not hasattr(self.sampling, "seed"):
            return self.sampling
        return replace(self.sampling, seed=((self.sampling.seed or 0) + 1009 * k) % (2**31))

    async def _draw(self, k: int, messages: list[dict[str, str]], state: DialogueState,
                    extra: str, schema: dict[str, Any]) -> tuple[list[dict[str, str]], Any]:
        """Candidate ``k``, and the prompt it was drawn from (trimmed when the context is full)."""
        sampling = self._candidate_sampling(k)
        try:
            return messages, await self._ask(messages, schema, sampling)
        except ContextOverflow:
            messages = await self._messages(state, 2, extra)
            return messages, await self._ask(messages, schema, sampling)

    async def _candidates(self, messages: list[dict[str, str]], state: DialogueState,
                          extra: str, schemas: list[dict[str, Any]], first: int = 0,
                          deadline: float | None = None, problems: list[str] | None = None,
                          ) -> AsyncIterator[tuple[int, Any]]:
        """(k, result) for each candidate (one per schema, numbered from ``first``), in order.
        Unless ``pick = "first"``, on a backend that decodes one seat's requests together
        (``decodes_together``: llamacpp-batched), every candidate is asked at once and they are
        decoded in the same steps; otherwise one after another, so ``pick = "first"`` draws no
        more than it says. Candidates not finished by ``deadline`` (the event loop's clock) are
        stopped and left out, and ``problems`` is told how many."""
        loop = asyncio.get_running_loop()

        def cut(unfinished: int) -> None:
            if problems is not None:
                problems.append(f"{unfinished} of {len(schemas)} candidates not finished within the "
                                f"{self.reply_budget_s:g} s {REPLY_BUDGET}")

        if deadline is not None and loop.time() >= deadline:  # spent in line or by round one
            cut(len(schemas))
            return
        if self.pick != "first" and len(schemas) > 1 and getattr(
                self.backend, "decodes_together", False):
            tasks = [asyncio.ensure_future(self._draw(first + k, messages, state, extra, schema))
                     for k, schema in enumerate(schemas)]
            try:
                timeout = None if deadline is None else max(0.0, deadline - loop.time())
                done, pending = await asyncio.wait(tasks, timeout=timeout,
                                                   return_when=asyncio.FIRST_EXCEPTION)
            finally:  # stopped (the budget, a failure, the turn cancelled): dropped by the backend
                unfinished = [task for task in tasks if not task.done()]
                for task in unfinished:
                    task.cancel()
                await asyncio.gather(*unfinished, return_exceptions=True)
            finished = [t for t in tasks if t in done and not t.cancelled()]
            failed = next((t.exception() for t in finished if t.exception() is not None), None)
            if failed is not None:
                raise failed
            if len(finished) < len(tasks):
                cut(len(tasks) - len(finished))
            for k, task in enumerate(tasks):
                if task in finished:
                    yield first + k, task.result()[1]
            return
        for k, schema in enumerate(schemas):
            try:
                async with asyncio.timeout_at(deadline) as within:
                    messages, result = await self._draw(first + k, messages, state, extra, schema)
            except TimeoutError:
                if not within.expired():
                    raise
                cut(len(schemas) - k)
                return
            yield first + k, result

    async def _narrate(self, state: DialogueState, plan: Any, schema: dict[str, Any], extra: str,
                       system_text: str, usage: dict[str, Any]) -> tuple[Turn | None, str | None]:
        """Sample up to ``candidates`` narrations of the planned move and keep the best that
        passes every check (``_problem`` and narration.narration_findings), ranked by the model's
        own mean log-likelihood per token (with a one-sentence budget, those brief around their
        price first: ``_brief``; with ``pick = "shortest"``, then the shortest); with ``pick =
        "first"`` the first that passes, the rest not drawn. With ``rephrase``, when none passes,
        a second round as many, each made to begin with another word people begin this move with
        (openers.openers_for); its turn is marked ``repaired``. With ``reply_budget_s``,
        candidates not finished that many seconds after the turn's start are stopped and left
        out, and the rephrased round runs only when round one's time again still fits. (None,
        why) when none passes; ``usage["candidates"]`` counts those drawn."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = None if self.reply_budget_s is None else started + self.reply_budget_s
        messages = await self._messages(state, None, extra)
        problems: list[str] = []
        written: list[str] = []
        best = await self._best(self._candidates(messages, state, extra, [schema] * self.candidates,
                                                 deadline=deadline, problems=problems),
                                state, plan, system_text, usage, problems, written)
        if best is None and self.rephrase:
            said = [t.utterance for t in state.turns if t.role is state.role]
            openers = openers_for(state.role, plan.act, [*said, *written], self.candidates)
            schemas = [narration_schema(cot=self.cot, act=plan.act, price=plan.price, role=state.role,
                                        sentences=self.sentences, opener=opener) for opener in openers]
            took = loop.time() - started
            if schemas and deadline is not None and deadline - loop.time() < took:
                problems.append(f"no time for a rephrased round (round one took {took:.1f} s of "
                                f"the {self.reply_budget_s:g} s {REPLY_BUDGET})")
            elif schemas:
                best = await self._best(
                    self._candidates(messages, state, extra, schemas, first=self.candidates,
                                     deadline=deadline, problems=problems),
                    state, plan, system_text, usage, problems, written)
                if best is not None:
                    best = replace(best, repaired=True)
        if any(REPLY_BUDGET in p for p in problems):
            self.stats["over_budget"] += 1
        if best is None:
            return None, "; ".join(dict.fromkeys(problems)) or "no candidate"
        return best, None

    async def _best(self, candidates: AsyncIterator[tuple[int, Any]], state: DialogueState,
                    plan: Any, system_text: str, usage: dict[str, Any], problems: list[str],
                    written: list[str]) -> Turn | None:
        """The best passing candidate of one round (``_narrate``), or None; what each candidate
        wrote goes to ``written`` and why each failed to ``problems``."""
        best: tuple[tuple[bool, int, float], Turn] | None = None
        async with aclosing(candidates) as drawn:
            async for k, result in drawn:
                usage["candidates"] += 1
                if usage["prompt_tokens"] is None:
                    usage["prompt_tokens"] = result.prompt_tokens
                usage["prompt_tokens_evaluated"] += result.prompt_tokens_evaluated or 0
                usage["completion_tokens"] += result.completion_tokens or 0
                try:
                    utterance, thought = parse_narration(result.text)
                except TurnError as exc:
                    problems.append(str(exc))
                    continue
                written.append(utterance)
                turn = Turn(state.role, plan.act, plan.price, utterance,
                            thought=thought if self.cot else None)
                problem = self._problem(turn, state, system_text)
                if problem is None:
                    found = narration_findings(utterance, plan.act, state.role, price=plan.price,
                                               category=state.scenario.category or "",
                                               title=state.scenario.title,
                                               their_price=state.their_offer,
                                               my_price=state.my_offer,
                                               listing=state.scenario.listing_price)
                    problem = "; ".join(f"{f.check}: {f.detail}" for f in found) or None
                # the reader's log-odds that the line reads sensible, scored once (None: no reader)
                read = (self.reader.score(utterance, state.role.value)
                        if problem is None and self.reader is not None else None)
                if read is not None and self.reader_floor is not None:
                    p = chance(read)
                    if p < self.reader_floor:
                        problem = f"reader: {p:.2f} < {self.reader_floor} a line reads sensible"
                if problem is not None:
                    problems.append(problem)
                    log.debug("%s: candidate %d unusable (%s): %r", self.name, k, problem, utterance)
                    continue
                extra_info = getattr(result, "extra", None) or {}
                n = extra_info.get("logprob_tokens") or 0
                preference = (-len(utterance) if self.pick == "shortest" else
                              read if self.pick == "reader" else 0)
                score = (self._brief(turn), preference, extra_info["logprob"] / n if n else 0.0)
                if best is None or score > best[0]:
                    best = (score, turn)
                if self.pick == "first":
                    break
        return None if best is None else best[1]

    def _brief(self, turn: Turn) -> bool:
        """Whether a priced narration says at most BRIEF_BEFORE_PRICE / BRIEF_AFTER_PRICE
        characters around its price (True for every narration without a one-sentence budget or
        a price)."""
        if self.sentences != 1 or turn.price is None:
            return True
        before, after = around_price(turn.utterance, turn.price)
        return len(before) <= BRIEF_BEFORE_PRICE and len(after) <= BRIEF_AFTER_PRICE

    def _problem(self, turn: Turn, state: DialogueState, system_text: str) -> str | None:
        """Why the reply is not fit to send, or None."""
        said = _normal(turn.utterance)
        if not said:
            return "the utterance is empty"
        allowed = [p for p in (state.their_offer, state.my_offer) if p is not None]
        problem = utterance_problem(turn, allowed) or prompt_leak(turn.utterance, system_text)
        if problem:
            return problem
        if self.policy is not None and turn.act in PRICED_REPLY_ACTS and turn.price is not None:
            if not any(abs(p - turn.price) <= 0.005 * turn.price for p in stated_prices(turn.utterance)):
                return f"the utterance must state the price {money(turn.price)}"
        framing = opening_message(state.role, state.max_turns) + " turns left after it. Your move: " + \
            " ".join(directive(a, None, state.role) for a in (Act.COUNTER_PRICE, Act.INQUIRE, Act.INFORM))
        if said in _normal(framing) or _copies(said, _normal(framing), 4):
            return "the utterance repeats the conversation's framing, not something a person would say"
        for earlier in state.turns:
            before = _normal(earlier.utterance)
            if before == said:
                who = "you already said that" if earlier.role is state.role else "that repeats the other side's words"
                return f"{who}; say something new"
            if earlier.role is not state.role and _copies(said, before, _PARROT):
                return "that copies the other side's words; say it in your own words"
        return None

    # ---- one turn

    async def respond(self, state: DialogueState) -> Turn:
        self.stats["turns"] += 1
        system_text = system_prompt(state.scenario, state.role, personality=self.personality, cot=self.cot,
                                    hybrid=self.policy is not None)
        if self.policy is None:
            plan = None
            schema = reply_schema(cot=self.cot, acts=allowed_acts(state))
            extra = None
        else:
            plan = self.policy.plan(state)
            schema = narration_schema(cot=self.cot, act=plan.act, price=plan.price, role=state.role,
                                      sentences=self.sentences)
            extra = directive(plan.act, plan.price, state.role)

        def make_turn(text: str) -> Turn:
            if plan is None:
                reply = parse_reply(text)
                return Turn(state.role, reply.act, reply.price, reply.utterance,
                            thought=reply.thought if self.cot else None)
            utterance, thought = parse_narration(text)
            return Turn(state.role, plan.act, plan.price, utterance, thought=thought if self.cot else None)

        usage = {"prompt_tokens": None, "prompt_tokens_evaluated": 0, "completion_tokens": 0,
                 "candidates": 0}
        if plan is not None and self.candidates > 1:
            try:
                chosen, why = await self._narrate(state, plan, schema, extra, system_text, usage)
                turn = chosen if chosen is not None else await self._fallback(
                    state, plan, f"no usable narration among {usage['candidates']} candidates: {why}")
                self.stats["repaired"] += turn.repaired
            except ModelError as exc:
                log.warning("%s: model failed, playing a fallback turn: %s", self.name, exc)
                turn = await self._fallback(state, plan, f"model error: {exc}", model_failed=True)
            turn = replace(turn, prompt_tokens=usage["prompt_tokens"],
                           prompt_tokens_evaluated=usage["prompt_tokens_evaluated"],
                           completion_tokens=usage["completion_tokens"])
            return guard_turn(turn, state.scenario, state.turns)
        try:
            messages = await self._messages(state, None, extra)
            problem = None
            for attempt in range(self.max_repairs + 1):
                try:
                    result = await self._ask(messages, schema)
                except ContextOverflow:  # the backend counted more than we did: keep 2 turns
                    messages = await self._messages(state, 2, extra)
                    result = await self._ask(messages, schema)
                if usage["prompt_tokens"] is None:
                    usage["prompt_tokens"] = result.prompt_tokens
                usage["prompt_tokens_evaluated"] += result.prompt_tokens_evaluated or 0
                usage["completion_tokens"] += result.completion_tokens or 0
                try:
                    turn = make_turn(result.text)
                    problem = self._problem(turn, state, system_text)
                except TurnError as exc:
                    problem = str(exc)
                if problem is None:
                    turn = replace(turn, repaired=attempt > 0)
                    break
                log.debug("%s: reply %d unusable (%s): %r", self.name, attempt, problem, result.text[:200])
                messages = [*messages, {"role": "assistant", "content": result.text},
                            {"role": "user", "content": f"That reply was not usable: {problem}. "
                                                        "Answer again with one JSON object."}]
            else:
                turn = await self._fallback(state, plan, f"unusable reply after {self.max_repairs} "
                                                        f"re-ask(s): {problem}")
        except ModelError as exc:
            log.warning("%s: model failed, playing a fallback turn: %s", self.name, exc)
            turn = await self._fallback(state, plan, f"model error: {exc}", model_failed=True)
        if turn.repaired:
            self.stats["repaired"] += 1
        turn = replace(turn, prompt_tokens=usage["prompt_tokens"],
                       prompt_tokens_evaluated=usage["prompt_tokens_evaluated"],
                       completion_tokens=usage["completion_tokens"])
        return guard_turn(turn, state.scenario, state.turns)

    async def _fallback(self, state: DialogueState, plan: Any, reason: str, *,
                        model_failed: bool = False) -> Turn:
        """A rule-based turn (llm policy) or a template narration of the planned move (hybrid).

        ``model_failed``: the backend failed (rather than answering unusably); the runner ends
        a negotiation as an error when that happens too often (runner.Negotiation)."""
        self.stats["fallback"] += 1
        self.stats["model_failed"] += model_failed
        if plan is None:
            turn = await self.fallback.respond(state)
        else:
            said = [t.utterance for t in state.turns if t.role is state.role]
            rng = random.Random(f"{state.scenario.id}|{state.role.value}|{state.turn_index}")
            turn = Turn(state.role, plan.act, plan.price,
                        template_utterance(plan.act, state.role, plan.price, rng, said))
        return replace(turn, fallback=True, guard=f"fallback: {reason}"[:300],
                       model_failed=model_failed)
