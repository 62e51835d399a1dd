"""ChatBackend for OpenAI-compatible chat-completions endpoints (llama-cpp-python's server, vLLM,
OpenAI, ...), over aiohttp.

Endpoints disagree on how to ask for a JSON-schema-constrained reply, so the style is chosen per
endpoint (``schema_style`` in ``[models.NAME]``):

- ``json_object``: ``{"type": "json_object", "schema": {...}}``, what llama-cpp-python's server
  honours (it answers HTTP 500 to the OpenAI form). With this style the llama.cpp sampling
  extras ``top_k`` and ``repeat_penalty`` are sent too.
- ``json_schema``: ``{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}``, what
  OpenAI and vLLM expect.
- ``none``: no constraint is sent; the agent's parser and guard deal with the free text.

The API key comes from the environment variable named by ``api_key_env``; it is read once and
never logged or shown in repr.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from bot.errors import ModelError, ModelTimeout
from bot.llm.base import ChatResult, Message, Sampling
from bot.llm.models import SCHEMA_STYLES, ModelSpec

log = logging.getLogger(__name__)

_BODY_EXCERPT = 300  # characters of an error body worth showing


def chat_completions_url(url: str) -> str:
    """``http://host:port/v1`` -> ``http://host:port/v1/chat/completions`` (full URLs kept)."""
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


def response_format(schema: Mapping[str, Any] | None, style: str) -> dict[str, Any] | None:
    """The ``response_format`` request field for ``schema`` in the endpoint's style."""
    if schema is None or style == "none":
        return None
    if style == "json_object":
        return {"type": "json_object", "schema": dict(schema)}
    if style == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": "reply", "schema": dict(schema), "strict": True},
        }
    raise ValueError(f"unknown schema style {style!r} (use one of {', '.join(SCHEMA_STYLES)})")


def _evaluated_tokens(payload: Mapping[str, Any], prompt_tokens: int | None) -> int | None:
    """Prompt tokens the server actually evaluated, where it says (else None).

    OpenAI and vLLM report cached prompt tokens in usage.prompt_tokens_details.cached_tokens;
    llama.cpp's llama-server reports the evaluated count as timings.prompt_n.
    """
    timings = payload.get("timings")
    if isinstance(timings, Mapping) and isinstance(timings.get("prompt_n"), int):
        return timings["prompt_n"]
    details = (payload.get("usage") or {}).get("prompt_tokens_details")
    if isinstance(details, Mapping) and isinstance(details.get("cached_tokens"), int) \
            and prompt_tokens is not None:
        return prompt_tokens - details["cached_tokens"]
    return None


class OpenAIHTTPBackend:
    """ChatBackend over an OpenAI-compatible ``/chat/completions`` endpoint."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "openai",
        model: str | None = None,
        schema_style: str = "json_object",
        api_key_env: str | None = None,
        timeout_s: float = 120.0,
        seed: int | None = None,
    ) -> None:
        if schema_style not in SCHEMA_STYLES:
            raise ModelError(f"{name}: schema style {schema_style!r} is not one of "
                             f"{', '.join(SCHEMA_STYLES)}")
        self.name = name
        self.url = chat_completions_url(url)
        self.model = model or name
        self.schema_style = schema_style
        self.timeout_s = timeout_s
        self.seed = seed
        self._api_key: str | None = None
        if api_key_env is not None:
            key = os.environ.get(api_key_env, "")
            if not key:
                raise ModelError(
                    f"{name}: environment variable {api_key_env} (api_key_env) is not set or "
                    f"empty; export it with the endpoint's API key"
                )
            self._api_key = key
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> OpenAIHTTPBackend:
        if spec.url is None:
            raise ModelError(f"models.{spec.name}.url: backend 'openai' needs a url")
        return cls(
            spec.url,
            name=spec.name,
            model=spec.remote_model,
            schema_style=spec.schema_style,
            api_key_env=spec.api_key_env,
            timeout_s=spec.timeout_s,
            seed=spec.seed,
        )

    def __repr__(self) -> str:  # never shows the key
        return f"OpenAIHTTPBackend(name={self.name!r}, url={self.url!r}, model={self.model!r})"

    def _request_body(
        self, messages: Sequence[Message], schema: Mapping[str, Any] | None, sampling: Sampling
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in messages],
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
        }
        seed = sampling.seed if sampling.seed is not None else self.seed
        if seed is not None:
            body["seed"] = seed
        if self.schema_style == "json_object":  # llama.cpp servers take its sampling knobs
            body["top_k"] = sampling.top_k
            body["repeat_penalty"] = sampling.repeat_penalty
        fmt = response_format(schema, self.schema_style)
        if fmt is not None:
            body["response_format"] = fmt
        return body

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        schema: Mapping[str, Any] | None = None,
        sampling: Sampling = Sampling(),
        timeout: float | None = None,
    ) -> ChatResult:
        limit = self.timeout_s if timeout is None else timeout
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        headers = {"Content-Type": "application/json"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key}"
        body = self._request_body(messages, schema, sampling)
        started = time.perf_counter()
        try:
            async with self._session.post(
                self.url, json=body, headers=headers, timeout=aiohttp.ClientTimeout(total=limit)
            ) as response:
                text = await response.text()
                status = response.status
        except TimeoutError:  # aiohttp's timeouts subclass it
            raise ModelTimeout(
                f"{self.name}: no reply from {self.url} within {limit:g} s (raise timeout_s in "
                f"the model's config if the server is slow)", seconds=limit,
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise ModelError(
                f"{self.name}: cannot connect to {self.url} ({exc.os_error or exc}); is the "
                f"server running and the url right?"
            ) from exc
        except aiohttp.ClientError as exc:
            raise ModelError(f"{self.name}: request to {self.url} failed: {exc}") from exc
        seconds = time.perf_counter() - started
        if status != 200:
            raise ModelError(
                f"{self.name}: {self.url} answered HTTP {status}: {text[:_BODY_EXCERPT]}"
                + (" (if it rejects response_format, try another schema_style)"
                   if schema is not None and status in (400, 422, 500) else "")
            )
        return self._parse(text, seconds)

    async def probe(self) -> None:
        """A one-token completion without a schema: the endpoint is reachable, serves the
        model and answers a chat completion. Raises ModelError like ``chat``."""
        await self.chat([{"role": "user", "content": "Say OK."}], schema=None,
                        sampling=Sampling(temperature=0.0, max_tokens=1))

    def _parse(self, text: str, seconds: float) -> ChatResult:
        try:
            payload = json.loads(text)
            choice = payload["choices"][0]
            content = choice["message"].get("content") or ""
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
            raise ModelError(
                f"{self.name}: {self.url} sent a reply that is not a chat completion: "
                f"{text[:_BODY_EXCERPT]!r}"
            ) from exc
        usage = payload.get("usage") or {}
        prompt_tokens = usage.get("prompt_tokens")
        return ChatResult(
            text=content,
            prompt_tokens=prompt_tokens,
            prompt_tokens_evaluated=_evaluated_tokens(payload, prompt_tokens),
            completion_tokens=usage.get("completion_tokens"),
            seconds=seconds,
            finish_reason=choice.get("finish_reason"),
        )

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
