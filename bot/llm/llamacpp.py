"""The in-process llama.cpp backend (llama-cpp-python 0.3.x).

Why it looks the way it does:

- A ``Llama`` object is not thread-safe and its calls block for seconds. Each backend owns one
  Llama and one single-thread executor: every blocking call (loading included) runs on that
  thread, so calls on one instance run one at a time, in order, and the event loop never blocks.
  The executor is the instance's lock; unlike an ``asyncio.Lock`` it does not bind to one event
  loop and it stays consistent when a caller gives up waiting.
- llama-cpp-python keeps the tokens it evaluated last and only evaluates the new suffix of a
  prompt that extends them. One instance per agent seat therefore keeps each agent's growing
  conversation cached (see ``ModelPool`` in ``bot.llm.pool``). ``prompt_tokens_evaluated`` is
  measured, not guessed: ``_MeteredLlama.eval`` records the size of the first ``eval`` of each
  completion, which is exactly the prompt suffix llama.cpp decodes (0 on a full cache hit).
- A call that runs past its timeout raises ModelTimeout at once; the worker stops at its next
  ``eval`` (the next token, or the next batch of a long prompt), so the instance is free again
  shortly after and the next call works normally.
- JSON-schema replies go through ``create_chat_completion(response_format={"type":
  "json_object", "schema": ...})``, but sample with ``GrammarCheckedSampler``: the stock
  sampler checks the whole vocabulary against the grammar for every token (~0.7x the free
  generation speed here), checking only the drawn token keeps ~0.9x (bench/grammar_speed.py).
- llama.cpp's own log lines are routed to Python logging (DEBUG) and its error lines are kept per
  thread, so a failed load says *why* ("unknown model architecture: 'x'") instead of
  llama-cpp-python's bare "Failed to load model from file".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import llama_cpp
import llama_cpp._internals as llama_internals
from llama_cpp import Llama

from bot.errors import ContextOverflow, ModelError, ModelTimeout
from bot.llm.adapters import ManifestFile, check_manifest_file
from bot.llm.base import ChatResult, Message, Sampling
from bot.llm.models import (
    ModelSpec,
    check_gguf_magic,
    inspect_gguf,
    is_known_architecture,
    resolve_model,
)
from bot.llm.sampling import GrammarCheckedSampler, forced_opening

log = logging.getLogger(__name__)
native_log = logging.getLogger(__name__ + ".native")

T = TypeVar("T")


def gpu_offload_supported() -> bool:
    """Whether this llama-cpp-python build can put layers on a GPU (CUDA, Metal, Vulkan...)."""
    return bool(llama_cpp.llama_supports_gpu_offload())


def default_threads() -> int:
    """Half the CPUs this process may use (llama.cpp's physical-core default), at least one.

    Measured on 2 cores: 2 threads generate ~25% faster than 1 on an idle machine, but when
    another process (or another instance) wants a core, llama.cpp's spinning threads stall each
    other and a call can take several times longer; two 1-thread instances side by side do twice
    the work of one. So the default leaves room, and ``n_threads`` raises it on dedicated boxes.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cpus = os.cpu_count() or 1
    return max(1, cpus // 2)


# --------------------------------------------------------------------------- llama.cpp logs

_GGML_LOG_ERROR = 4  # enum ggml_log_level: NONE 0, DEBUG 1, INFO 2, WARN 3, ERROR 4, CONT 5
_thread_errors = threading.local()
_log_callback: Any = None
_log_install_lock = threading.Lock()


def _on_llama_log(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
    message = text.decode("utf-8", "replace")
    if level == _GGML_LOG_ERROR:
        errors = getattr(_thread_errors, "lines", None)
        if errors is None:
            errors = _thread_errors.lines = deque(maxlen=8)
        errors.append(message.strip())
    if native_log.isEnabledFor(logging.DEBUG) and message.strip():
        native_log.debug("%s", message.rstrip())


def _install_log_capture() -> None:
    """Route llama.cpp's log to Python logging, once per process."""
    global _log_callback
    with _log_install_lock:
        if _log_callback is None:
            _log_callback = llama_cpp.llama_log_callback(_on_llama_log)  # keep a reference
            llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))


def _take_thread_errors() -> list[str]:
    lines = list(getattr(_thread_errors, "lines", ()))
    _thread_errors.lines = deque(maxlen=8)
    return [line for line in lines if line]


# --------------------------------------------------------------------------- metered Llama


class _Cancelled(Exception):
    """Raised inside the worker when the call that started it has been abandoned."""


@dataclass
class _Job:
    """One chat call as the worker thread sees it."""

    cancel: threading.Event = field(default_factory=threading.Event)
    prompt_evaluated: int | None = None
    sampler: Any = None  # the grammar-checked sampler of this call, when it used one
    opening: str = ""  # the reply's forced opening (forced_opening), decoded with the prompt
    opening_tokens: list[int] = field(default_factory=list)


class _MeteredLlama(Llama):
    """A Llama that measures the prompt tokens it decodes and stops when its job is cancelled.

    With ``checked_grammar`` (the default) grammar-constrained calls sample through
    ``GrammarCheckedSampler``; without it, llama-cpp-python's own sampler chain is used.
    """

    _haggle_job: _Job | None = None
    checked_grammar: bool = True

    def _init_sampler(self, *args: Any, grammar: Any = None, **kwargs: Any) -> Any:
        if grammar is None or not self.checked_grammar:
            return super()._init_sampler(*args, grammar=grammar, **kwargs)
        chain = super()._init_sampler(*args, grammar=None, **kwargs)
        grammar_only = llama_internals.LlamaSampler()
        grammar_only.add_grammar(self._model, grammar)
        sampler = GrammarCheckedSampler(chain, grammar_only, self.n_vocab())
        job = self._haggle_job
        if job is not None:
            job.sampler = sampler
            for token in job.opening_tokens:  # the grammar and penalties take it as written
                if not sampler.force(token):
                    raise ModelError(f"the grammar refused the reply's opening {job.opening!r}: "
                                     f"report this schema as a bug")
        return sampler

    def create_completion(self, prompt: Any, **kwargs: Any) -> Any:
        """With a forced opening (a grammar-checked call of a job that has one), the opening's
        tokens are decoded with the prompt and the reply is given back with it, counted as the
        reply's tokens, as the batched engine does."""
        job = self._haggle_job
        if (job is None or not job.opening or kwargs.get("grammar") is None
                or kwargs.get("stream") or not self.checked_grammar or isinstance(prompt, str)):
            return super().create_completion(prompt, **kwargs)
        job.opening_tokens = self.tokenize(job.opening.encode("utf-8"), add_bos=False)
        n = len(job.opening_tokens)
        if kwargs.get("max_tokens"):
            kwargs["max_tokens"] = max(1, kwargs["max_tokens"] - n)
        response = super().create_completion(list(prompt) + job.opening_tokens, **kwargs)
        response["choices"][0]["text"] = job.opening + response["choices"][0]["text"]
        usage = response.get("usage")
        if usage:
            usage["prompt_tokens"] -= n
            usage["completion_tokens"] += n
        if job.prompt_evaluated is not None and job.prompt_evaluated >= n:
            job.prompt_evaluated -= n
        return response

    def eval(self, tokens: Sequence[int]) -> None:
        job = self._haggle_job
        if job is None:
            super().eval(tokens)
            return
        if job.prompt_evaluated is None:
            # generate() calls eval first with the prompt suffix the KV cache lacks.
            job.prompt_evaluated = len(tokens)
        # Decode in batches so that a cancelled call stops within one batch.
        for start in range(0, max(len(tokens), 1), self.n_batch):
            if job.cancel.is_set():
                raise _Cancelled()
            super().eval(tokens[start:start + self.n_batch])


class _PromptCaptured(Exception):
    def __init__(self, prompt: list[int]) -> None:
        self.prompt = prompt


class _PromptCapture:
    """Stands in for a Llama when a chat handler runs only to build its prompt.

    llama-cpp-python formats messages inside its chat handlers and exposes no formatter on its
    own; running the very handler ``create_chat_completion`` would use, against this stand-in,
    yields the exact prompt tokens it would evaluate.
    """

    verbose = False

    def __init__(self, llm: Llama) -> None:
        self._llm = llm

    def tokenize(self, *args: Any, **kwargs: Any) -> list[int]:
        return self._llm.tokenize(*args, **kwargs)

    def create_completion(self, *, prompt: list[int], **_: Any) -> Any:
        raise _PromptCaptured(list(prompt))


# --------------------------------------------------------------------------- the backend


def _consume_result(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned call's outcome so asyncio does not report it as never retrieved."""
    if not future.cancelled():
        future.exception()


class LlamaCppBackend:
    """ChatBackend over one in-process llama.cpp model instance.

    Construction is cheap; the model loads on the first call (or ``await load()``) in the
    instance's worker thread. ``model`` is a model reference (path, hf://..., or "embedded").
    """

    def __init__(
        self,
        model: str | Path = "embedded",
        *,
        name: str | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        seed: int | None = None,
        chat_format: str | None = None,
        timeout_s: float = 120.0,
        base_dir: str | Path | None = None,
        verbose: bool = False,
        checked_grammar: bool = True,
        forced_openings: bool = True,
        manifest_file: ManifestFile | None = None,
        force_unverified: bool = False,
        lora: str | Path | None = None,
        flash_attn: bool = False,
    ) -> None:
        self.model_ref = str(model)
        self.flash_attn = flash_attn  # llama-cpp-python's default: off
        # a trained model folder's file: checked against its manifest (size, sha256) at load
        self.manifest_file = manifest_file
        self.force_unverified = force_unverified
        # A GGUF LoRA adapter applied on the base at load ([models.NAME] lora; bot/llm/lora.py
        # resolves an adapter folder to its checked file).
        self.lora = str(lora) if lora is not None else None
        self.name = name or Path(self.model_ref).stem
        self.n_ctx_requested = n_ctx
        self.n_threads = n_threads or default_threads()
        self.n_gpu_layers = n_gpu_layers
        self.seed = seed
        self.chat_format = chat_format
        self.timeout_s = timeout_s
        self.base_dir = base_dir
        self.verbose = verbose
        # True: check sampled tokens against the schema's grammar one at a time (fast); False:
        # llama-cpp-python's sampler, which checks the whole vocabulary every token.
        self.checked_grammar = checked_grammar
        # True: the opening a reply's schema forces is decoded with the prompt (forced_opening);
        # False: drawn token by token, as llama-cpp-python does
        self.forced_openings = forced_openings
        self.model_path: Path | None = None
        self._llm: _MeteredLlama | None = None
        self._closed = False
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"llama-{self.name}"
        )

    @classmethod
    def from_spec(cls, spec: ModelSpec, *, base_dir: str | Path | None = None) -> LlamaCppBackend:
        return cls(
            spec.path,
            name=spec.name,
            n_ctx=spec.n_ctx,
            n_threads=spec.n_threads,
            n_gpu_layers=spec.n_gpu_layers,
            seed=spec.seed,
            chat_format=spec.chat_format,
            timeout_s=spec.timeout_s,
            base_dir=base_dir,
            manifest_file=spec.manifest_file,
            force_unverified=spec.force_unverified,
            lora=getattr(spec, "lora", None),
            flash_attn=spec.flash_attn is True,
            forced_openings=spec.forced_openings,
        )

    def __repr__(self) -> str:
        return f"LlamaCppBackend(name={self.name!r}, model={self.model_ref!r})"

    # ---- worker-thread plumbing

    async def _in_worker(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise ModelError(f"{self.name}: the backend is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # ---- loading

    async def load(self) -> None:
        """Load the model (no-op when loaded). Runs in the worker thread."""
        await self._in_worker(self._ensure_loaded)

    async def probe(self) -> None:
        """The backend's health check: loading the model (a file llama.cpp cannot load fails
        here, with llama.cpp's reason)."""
        await self.load()

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def _ensure_loaded(self) -> _MeteredLlama:
        if self._llm is not None:
            return self._llm
        path = resolve_model(self.model_ref, self.base_dir)
        if self.manifest_file is not None:  # model_ref is its path (ModelSpec.from_table)
            # the file that is loaded must be the one that was verified (hash cached per file
            # identity: a reload of an unchanged file costs one stat)
            check_manifest_file(self.manifest_file, force_unverified=self.force_unverified)
        check_gguf_magic(path)
        lora_path = None
        if self.lora is not None:
            from bot.llm.lora import resolve_lora

            lora_path = resolve_lora(self.lora, base=path)
        offload = gpu_offload_supported()
        log.info(
            "%s: loading %s (llama-cpp-python %s, GPU offload %s, n_gpu_layers=%d, n_ctx=%d, "
            "n_threads=%d)", self.name, path, llama_cpp.__version__,
            "supported" if offload else "not supported (CPU-only build)",
            self.n_gpu_layers, self.n_ctx_requested, self.n_threads,
        )
        if self.n_gpu_layers != 0 and not offload:
            log.warning(
                "%s: n_gpu_layers=%d asked for, but this llama-cpp-python build is CPU-only: the "
                "model runs on the CPU. For a GPU, reinstall llama-cpp-python with "
                "CMAKE_ARGS=\"-DGGML_CUDA=on\" (or set n_gpu_layers = 0 to silence this).",
                self.name, self.n_gpu_layers,
            )
        _install_log_capture()
        _take_thread_errors()
        started = time.perf_counter()
        try:
            llm = _MeteredLlama(
                model_path=str(path),
                n_ctx=self.n_ctx_requested,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                n_gpu_layers=self.n_gpu_layers,
                seed=self.seed if self.seed is not None else llama_cpp.LLAMA_DEFAULT_SEED,
                chat_format=self.chat_format,
                verbose=self.verbose,
                lora_path=str(lora_path) if lora_path is not None else None,
                flash_attn=self.flash_attn,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise self._load_error(path, exc) from exc
        self.model_path = path
        self._llm = llm
        log.info("%s: loaded in %.2f s, chat format %s", self.name,
                 time.perf_counter() - started, llm.chat_format)
        return llm

    def _load_error(self, path: Path, exc: Exception) -> ModelError:
        """Explain a failed load: corrupt file, unsupported architecture, or llama.cpp's reason."""
        reasons = _take_thread_errors()
        said = f" llama.cpp said: {' / '.join(reasons)}." if reasons else ""
        info = inspect_gguf(path, sha256=False)  # raises a clear ModelError for corrupt files
        unknown_arch = any("unknown model architecture" in r for r in reasons)
        if unknown_arch or not is_known_architecture(info.architecture):
            return ModelError(
                f"{self.name}: llama.cpp (llama-cpp-python {llama_cpp.__version__}) cannot load "
                f"{path}: architecture {info.architecture!r} is not supported by this build.{said} "
                f"Use a model of a supported architecture (llama, qwen2, mistral, ...) or "
                f"upgrade llama-cpp-python."
            )
        return ModelError(
            f"{self.name}: llama.cpp could not load {path} ({info.architecture}, "
            f"{info.quantization}): {exc}.{said} The file may be truncated or need a newer "
            f"llama-cpp-python; n_gpu_layers={self.n_gpu_layers}, n_ctx={self.n_ctx_requested}."
        )

    @property
    def n_ctx(self) -> int:
        """The context window in tokens (the loaded context's, else the configured one)."""
        return self._llm.n_ctx() if self._llm is not None else self.n_ctx_requested

    async def reset_cache(self) -> None:
        """Forget the cached prompt: the next call evaluates its whole prompt (benchmarks)."""
        def reset() -> None:
            self._ensure_loaded().reset()

        await self._in_worker(reset)

    def perf_counters(self) -> dict[str, float]:
        """llama.cpp's own running totals for this instance (llama_perf_context).

        n_p_eval / t_p_eval_ms: prompt tokens decoded in batches and the time it took;
        n_eval / t_eval_ms: tokens decoded one at a time (generation). Empty before loading.
        """
        if self._llm is None:
            return {}
        data = llama_cpp.llama_perf_context(self._llm.ctx)
        return {"n_p_eval": data.n_p_eval, "t_p_eval_ms": data.t_p_eval_ms,
                "n_eval": data.n_eval, "t_eval_ms": data.t_eval_ms}

    # ---- token counting

    def _prompt_tokens(self, llm: Llama, messages: Sequence[Message]) -> list[int]:
        handler = (
            llm.chat_handler
            or llm._chat_handlers.get(llm.chat_format)
            or llama_cpp.llama_chat_format.get_chat_completion_handler(llm.chat_format)
        )
        try:
            handler(llama=_PromptCapture(llm), messages=[dict(m) for m in messages])
        except _PromptCaptured as captured:
            return captured.prompt
        raise ModelError(  # pragma: no cover - only a custom handler that never completes
            f"{self.name}: chat format {llm.chat_format!r} did not build a prompt"
        )

    async def count_tokens(self, messages: Sequence[Message]) -> int:
        """The number of prompt tokens ``messages`` make, exactly as ``chat`` would send them.

        Loads the model if needed. Tokenizing only reads the vocabulary, so it runs here
        without waiting for a generation in progress.
        """
        llm = self._llm if self._llm is not None else await self._in_worker(self._ensure_loaded)
        return len(self._prompt_tokens(llm, messages))

    # ---- chat

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        schema: Mapping[str, Any] | None = None,
        sampling: Sampling = Sampling(),
        timeout: float | None = None,
    ) -> ChatResult:
        """One chat completion; ``schema`` constrains the reply to JSON of that schema.

        Raises ContextOverflow when prompt + max_tokens exceeds n_ctx, ModelTimeout after
        ``timeout`` seconds (default: the model's timeout_s; loading is not counted), and
        ModelError for any other failure.
        """
        await self.load()
        limit = self.timeout_s if timeout is None else timeout
        job = _Job()
        future = asyncio.get_running_loop().run_in_executor(
            self._executor, self._chat_sync, job, list(messages), schema, sampling
        )
        try:
            return await asyncio.wait_for(asyncio.shield(future), limit)
        except TimeoutError:
            job.cancel.set()
            future.add_done_callback(_consume_result)
            raise ModelTimeout(
                f"{self.name}: no reply within {limit:g} s; the call was abandoned (raise "
                f"timeout_s in the model's config if the machine is slow)", seconds=limit,
            ) from None
        except asyncio.CancelledError:
            job.cancel.set()
            future.add_done_callback(_consume_result)
            raise

    def _chat_sync(
        self,
        job: _Job,
        messages: list[Message],
        schema: Mapping[str, Any] | None,
        sampling: Sampling,
    ) -> ChatResult:
        if job.cancel.is_set():  # abandoned while it waited for the worker
            raise _Cancelled()
        llm = self._ensure_loaded()
        prompt_tokens = len(self._prompt_tokens(llm, messages))
        if prompt_tokens + sampling.max_tokens > llm.n_ctx():
            raise ContextOverflow(prompt_tokens=prompt_tokens, max_tokens=sampling.max_tokens,
                                  n_ctx=llm.n_ctx(), model=self.name)
        kwargs: dict[str, Any] = {
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,
            "repeat_penalty": sampling.repeat_penalty,
            "max_tokens": sampling.max_tokens,
            "seed": sampling.seed if sampling.seed is not None else self.seed,
        }
        if schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": dict(schema)}
        started = time.perf_counter()
        llm.checked_grammar = self.checked_grammar
        if self.forced_openings:
            job.opening = forced_opening(schema)
        llm._haggle_job = job
        try:
            response = llm.create_chat_completion(messages=[dict(m) for m in messages], **kwargs)
        except ValueError as exc:
            if "exceed context window" in str(exc):
                raise ContextOverflow(prompt_tokens=prompt_tokens, max_tokens=sampling.max_tokens,
                                      n_ctx=llm.n_ctx(), model=self.name) from exc
            raise ModelError(f"{self.name}: llama.cpp rejected the request: {exc}") from exc
        except RuntimeError as exc:
            raise ModelError(f"{self.name}: llama.cpp failed during generation: {exc}") from exc
        finally:
            llm._haggle_job = None
        seconds = time.perf_counter() - started
        choice = response["choices"][0]
        usage = response.get("usage") or {}
        extra: dict[str, Any] = {}
        if job.sampler is not None and job.sampler.n_tokens:
            extra = {"logprob": job.sampler.logprob_sum, "logprob_tokens": job.sampler.n_tokens}
        return ChatResult(
            text=choice["message"].get("content") or "",
            prompt_tokens=usage.get("prompt_tokens", prompt_tokens),
            prompt_tokens_evaluated=job.prompt_evaluated,
            completion_tokens=usage.get("completion_tokens"),
            seconds=seconds,
            finish_reason=choice.get("finish_reason"),
            extra=extra,
        )

    # ---- closing

    def _close_sync(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None

    async def aclose(self) -> None:
        """Free the model once the call in progress (if any) has stopped."""
        if self._closed:
            return
        await self._in_worker(self._close_sync)
        self._closed = True
        self._executor.shutdown(wait=False)
