"""The engine behind the batched llama.cpp backend (bot/llm/batched.py explains the design).

One ``BatchedEngine`` holds a model and one context with ``n_slots`` sequences and runs one
decode thread: admission of arriving requests to sequences (``choose_slot``), prefix reuse per
sequence and across sequences (a prompt that begins like another sequence's cache starts from a
copy of it, and waits for one that is about to be decoded), one ``llama_batch`` per step over
every active sequence, a sampler chain, grammar and stop rules per request, and cancellation.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import llama_cpp
import llama_cpp._internals as llama_internals
from llama_cpp import llama_chat_format

from bot.errors import ModelError
from bot.llm.base import ChatResult, Message
from bot.llm.batch_slots import (
    SHARE_MIN,
    Capture,
    Captured,
    Prepared,
    Request,
    Slot,
    cached_prefix,
    choose_slot,
    common_prefix,
    prefix_coming,
)
from bot.llm.llamacpp import (
    LlamaCppBackend,
    _install_log_capture,
    _take_thread_errors,
    gpu_offload_supported,
)
from bot.llm.models import check_gguf_magic, inspect_gguf, resolve_model
from bot.llm.requantize import derived_gguf
from bot.llm.sampling import GrammarCheckedSampler, forced_opening

log = logging.getLogger(__name__)

N_BATCH = 512          # tokens per llama_decode (generated tokens first, then prompt chunks)
PROMPT_CHUNK = 256     # at most this many prompt tokens of one sequence per step
PENALTY_LAST_N = 64    # llama-cpp-python's last_n_tokens_size, so penalties match its own
MIN_P = 0.05           # llama-cpp-python's chat default


def all_threads() -> int:
    """Every CPU this process may use: one engine serves every seat, so it gets the machine."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


class _Cancelled(Exception):
    """The request was abandoned (timeout or cancellation) while it was being decoded."""


# --------------------------------------------------------------------------- the engine


class BatchedEngine:
    """One model, one context of ``n_slots`` sequences of ``n_ctx`` tokens, one decode thread."""

    def __init__(self, model: str | Path = "embedded", *, name: str | None = None,
                 n_slots: int = 8, n_ctx: int = 2048, n_threads: int | None = None,
                 n_gpu_layers: int = 0, seed: int | None = None, chat_format: str | None = None,
                 lora: str | Path | None = None, lora_scale: float = 1.0, batch_format: str | None = None,
                 flash_attn: bool | None = None, forced_openings: bool = True, kv_type: str | None = None,
                 base_dir: str | Path | None = None, manifest_file: Any = None, force_unverified: bool = False,
                 ) -> None:
        if n_slots < 1 or n_slots > llama_cpp.llama_max_parallel_sequences():
            raise ModelError(f"{name or model}: n_slots must be in [1, "
                             f"{llama_cpp.llama_max_parallel_sequences()}], got {n_slots}")
        self.model_ref = str(model)
        self.name = name or Path(self.model_ref).stem
        self.n_slots = n_slots
        self.n_ctx_requested = n_ctx
        self.n_threads = n_threads or all_threads()
        self.n_gpu_layers = n_gpu_layers
        self.seed = seed
        self.chat_format = chat_format
        self.lora, self.lora_scale = (str(lora) if lora is not None else None), lora_scale
        self.batch_format = batch_format  # the file type to run (bot/llm/requantize.py)
        # None: on for the CPU, where a step over many sequences' caches is ~10% faster with it
        # (masked cells skipped); off with GPU layers (haggle's CUDA build has no FA kernels)
        self.flash_attn = n_gpu_layers == 0 if flash_attn is None else flash_attn
        self.kv_type = kv_type  # the KV cache's type (models.KV_TYPES); None: f16
        if kv_type not in (None, "f16") and not self.flash_attn:
            raise ModelError(f"{self.name}: kv_type {kv_type!r} needs flash_attn = true")
        # decode a reply's forced opening with its prompt (sampling.forced_opening), else draw it
        self.forced_openings = forced_openings
        self.base_dir = base_dir
        self.manifest_file = manifest_file  # a trained model folder's record of its GGUF
        self.force_unverified = force_unverified
        self.model_path: Path | None = None
        self._rng = random.Random(seed)
        self._cond = threading.Condition()
        self._incoming: deque[Request] = deque()
        self._releases: list[tuple[object, concurrent.futures.Future[None]]] = []
        self._stopping = False
        # True while the decode thread serves requests (loaded, not stopped), set under _cond:
        # a release or request made when it is False has no thread to wait for. The thread's
        # is_alive() cannot say that: it stays alive a moment after a failed load has returned.
        self._serving = False
        self._thread: threading.Thread | None = None
        self._ready: concurrent.futures.Future[None] | None = None
        self._start_lock = threading.Lock()
        self.slots = [Slot(seq=i) for i in range(n_slots)]
        self._model: Any = None
        self._ctx: Any = None
        self._batch: Any = None
        self._adapter: Any = None
        self._handler: Any = None
        self.n_ctx_seq = n_ctx
        self.n_vocab = 0
        self.steps = 0           # llama_decode calls
        self.batched_tokens = 0  # tokens they decoded
        self.max_active = 0      # most sequences decoding in one step
        self.copied_tokens = 0   # prompt tokens copied from another sequence, not decoded

    def __repr__(self) -> str:
        return f"BatchedEngine(name={self.name!r}, model={self.model_ref!r}, n_slots={self.n_slots})"

    # ---- starting and loading (on the decode thread)

    async def start(self) -> None:
        """Load the model on the decode thread (once); raises ModelError when it cannot."""
        with self._start_lock:
            if self._stopping:
                raise ModelError(f"{self.name}: the batched engine is closed")
            if self._ready is None or (self._ready.done() and self._ready.exception()):
                self._ready = concurrent.futures.Future()
                self._thread = threading.Thread(target=self._run, args=(self._ready,),
                                                name=f"llama-batched-{self.name}", daemon=True)
                self._thread.start()
            ready = self._ready
        await asyncio.wrap_future(ready)

    @property
    def loaded(self) -> bool:
        return self._ready is not None and self._ready.done() and not self._ready.exception()

    def _load(self) -> None:
        path = resolve_model(self.model_ref, self.base_dir)
        if self.manifest_file is not None:  # the file loaded must be the one verified
            from bot.llm.adapters import check_manifest_file

            check_manifest_file(self.manifest_file, force_unverified=self.force_unverified)
        check_gguf_magic(path)
        if self.n_gpu_layers != 0 and not gpu_offload_supported():
            log.warning("%s: n_gpu_layers=%d asked for, but this llama-cpp-python build is "
                        "CPU-only: the model runs on the CPU", self.name, self.n_gpu_layers)
        _install_log_capture()
        base = path  # what a LoRA adapter was trained on
        if self.batch_format is not None:  # written once into the model cache
            path = derived_gguf(inspect_gguf(path), self.batch_format, threads=self.n_threads)
        _take_thread_errors()
        started = time.perf_counter()
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = 0x7FFFFFFF if self.n_gpu_layers == -1 else self.n_gpu_layers
        try:
            self._model = llama_internals.LlamaModel(path_model=str(path), params=mparams,
                                                     verbose=False)
            cparams = llama_cpp.llama_context_default_params()
            cparams.n_ctx = self.n_slots * self.n_ctx_requested
            cparams.n_batch = cparams.n_ubatch = N_BATCH
            cparams.n_seq_max = self.n_slots
            cparams.kv_unified = False  # a KV stream per sequence: attention reads only its own
            cparams.n_threads = cparams.n_threads_batch = self.n_threads
            kv = getattr(llama_cpp, f"GGML_TYPE_{(self.kv_type or 'f16').upper()}")  # f16: the default
            cparams.type_k = cparams.type_v = kv
            # off, one sequence decodes exactly what a default Llama decodes
            cparams.flash_attn_type = (llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if self.flash_attn
                                       else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
            self._ctx = llama_internals.LlamaContext(model=self._model, params=cparams,
                                                     verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            self._free()
            raise LlamaCppBackend._load_error(self, path, exc) from exc  # type: ignore[arg-type]
        if self.lora is not None:
            from bot.llm.lora import resolve_lora  # a folder's manifest checks file and base

            lora = Path(self.lora).expanduser()
            if not lora.is_absolute():
                lora = Path(self.base_dir or ".").absolute() / lora
            self._set_adapter(resolve_lora(lora, base=base))
        self._batch = llama_cpp.llama_batch_init(N_BATCH, 0, 1)
        self.n_ctx_seq = int(llama_cpp.llama_n_ctx_seq(self._ctx.ctx))
        self.n_vocab = self._model.n_vocab()
        self._handler = self._chat_handler()
        self.model_path = path
        log.info("%s: loaded %s in %.2f s: %d sequences x %d tokens, %d thread(s)%s", self.name,
                 path, time.perf_counter() - started, self.n_slots, self.n_ctx_seq,
                 self.n_threads, f", LoRA {self.lora}" if self.lora else "")

    def _set_adapter(self, path: Path) -> None:
        adapter = llama_cpp.llama_adapter_lora_init(self._model.model, str(path).encode("utf-8"))
        if not adapter:
            reasons = " / ".join(_take_thread_errors())
            self._free()
            raise ModelError(f"{self.name}: llama.cpp could not load the LoRA adapter {path}"
                             f"{': ' + reasons if reasons else ''}; it must be a GGUF adapter "
                             f"made for this base model")
        self._adapter = adapter
        adapters = (llama_cpp.llama_adapter_lora_p_ctypes * 1)(adapter)
        scales = (ctypes.c_float * 1)(self.lora_scale)
        if llama_cpp.llama_set_adapters_lora(self._ctx.ctx, adapters, 1, scales):
            self._free()
            raise ModelError(f"{self.name}: llama.cpp refused the LoRA adapter {path}")

    def _chat_handler(self) -> Any:
        """The chat handler a Llama on this file would pick (its chat template, else a format)."""
        metadata = self._model.metadata()
        template = metadata.get("tokenizer.chat_template")
        chat_format = self.chat_format or ("llama-2" if template is None else (
            llama_chat_format.guess_chat_format_from_gguf_metadata(metadata) or "chat_template.default"))
        if chat_format == "chat_template.default" and template is not None:
            eos, bos = self._model.token_eos(), self._model.token_bos()
            return llama_chat_format.Jinja2ChatFormatter(template=template,
                eos_token=self._model.token_get_text(eos) if eos != -1 else "",
                bos_token=self._model.token_get_text(bos) if bos != -1 else "",
                stop_token_ids=[eos]).to_chat_handler()
        return llama_chat_format.get_chat_completion_handler(chat_format)

    # ---- preparing requests (any thread: reads the vocabulary only)

    def prepare(self, messages: Sequence[Message], schema: Mapping[str, Any] | None) -> Prepared:
        kwargs: dict[str, Any] = {}
        if schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": dict(schema)}
        try:
            self._handler(llama=Capture(self._model), messages=[dict(m) for m in messages],
                          **kwargs)
        except Captured as captured:
            asked = captured.kwargs
            stop = asked.get("stop") or []
            stop = [stop] if isinstance(stop, str) else list(stop)
            grammar = asked.get("grammar")
            opening = (forced_opening(schema).encode("utf-8")
                       if grammar is not None and self.forced_openings else b"")
            return Prepared(list(asked["prompt"]), [s.encode("utf-8") for s in stop if s],
                            grammar, self._model.tokenize(opening, False, False) if opening else [],
                            opening)
        raise ModelError(f"{self.name}: the chat format did not build a prompt")  # pragma: no cover

    # ---- the event loop's side

    def submit(self, request: Request) -> None:
        with self._cond:
            if self._stopping:
                raise ModelError(f"{self.name}: the batched engine is closed")
            if not self._serving:
                raise ModelError(f"{self.name}: the batched engine has no model loaded")
            self._incoming.append(request)
            self._cond.notify()

    def release(self, owner: object) -> concurrent.futures.Future[None]:
        """Forget ``owner``'s sequence (now, or when its request in flight ends): the sequence is
        free for any conversation, and what its KV cache holds stays there as a prefix cache until
        another conversation's prompt replaces it. The future is done once the decode thread has
        done it."""
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._cond:
            if not self._serving:
                done.set_result(None)  # nothing loaded, nothing held
                return done
            self._releases.append((owner, done))
            self._cond.notify()
        return done

    def close(self) -> None:
        """Stop the decode thread (failing what is still queued) and free the model."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        if thread is None:
            self._free()

    # ---- the decode thread

    def _run(self, ready: concurrent.futures.Future[None]) -> None:
        try:
            self._load()
        except BaseException as exc:  # noqa: BLE001 - reported to whoever awaits start()
            ready.set_exception(exc if isinstance(exc, ModelError) else ModelError(
                f"{self.name}: loading failed: {exc!r}"))
            return
        with self._cond:
            self._serving = True
        ready.set_result(None)
        waiting: deque[Request] = deque()
        active: list[Request] = []
        try:
            while True:
                with self._cond:
                    while (not self._stopping and not self._incoming and not self._releases
                           and not active and not (waiting and self._idle_slot())):
                        self._cond.wait()
                    if self._stopping:
                        break
                    waiting.extend(self._incoming)
                    self._incoming.clear()
                    releases, self._releases = self._releases, []
                for owner, done in releases:
                    self._release_owner(owner)
                    done.set_result(None)
                for request in [r for r in active if r.cancelled]:
                    active.remove(request)
                    self._finish(request, _Cancelled())
                for request in [r for r in waiting if r.cancelled]:
                    waiting.remove(request)
                    self._deliver(request, _Cancelled())
                for request in list(waiting):  # in arrival order
                    if prefix_coming(self.slots, request, active):
                        continue  # another sequence is decoding most of its prompt: copy it then
                    slot = choose_slot(self.slots, request.owner, request.prepared.prompt)
                    if slot is None:
                        break
                    waiting.remove(request)
                    try:
                        self._admit(request, slot)
                    except ModelError as exc:
                        self._finish(request, exc)
                        continue
                    active.append(request)
                if active:
                    self._step(active)
        finally:
            with self._cond:  # from here on, a release or request has no thread to wait for
                self._serving = False
                incoming, self._incoming = list(self._incoming), deque()
                releases, self._releases = self._releases, []
            failed = ModelError(f"{self.name}: the batched engine was closed")
            for request in [*active, *waiting, *incoming]:
                self._finish(request, failed)
            for _, done in releases:
                done.set_result(None)
            self._free()

    def _idle_slot(self) -> bool:
        return any(s.request is None for s in self.slots)

    def _release_owner(self, owner: object) -> None:
        for slot in self.slots:
            if slot.owner is owner:
                slot.owner = None  # its cache stays, for a later prompt that begins the same way

    def _clear(self, slot: Slot) -> None:
        llama_cpp.llama_memory_seq_rm(self._ctx.memory, slot.seq, -1, -1)
        slot.tokens = []

    def _admit(self, request: Request, slot: Slot) -> None:
        prepared = request.prepared
        prompt = prepared.prompt + prepared.prefill  # what the sequence will hold
        keep = common_prefix(slot.tokens, prompt)
        donor, share = cached_prefix(self.slots, prompt, but=slot)
        if donor is not None and share >= keep + SHARE_MIN:
            # With a KV stream per sequence, llama.cpp copies the donor's whole stream into this
            # one at the next llama_decode (before that step's tokens are placed); the cells
            # past the shared prefix are then dropped here.
            mem = self._ctx.memory
            llama_cpp.llama_memory_seq_cp(mem, donor.seq, slot.seq, -1, -1)
            llama_cpp.llama_memory_seq_rm(mem, slot.seq, share, -1)
            slot.tokens = donor.tokens[:share]
            slot.copying = True
            self.copied_tokens += share
            keep = share
        if keep == len(prompt):
            keep -= 1  # the whole prompt is cached: decode its last token again for logits
        if keep < len(slot.tokens):
            if not llama_cpp.llama_memory_seq_rm(self._ctx.memory, slot.seq, keep, -1):
                self._clear(slot)
                keep = 0
            del slot.tokens[keep:]
        if slot.owner is not request.owner and slot.owner is not None:
            log.debug("%s: sequence %d changes hands (its last conversation is evicted)",
                      self.name, slot.seq)
        slot.owner, slot.request, request.slot = request.owner, request, slot
        request.feed = list(prompt[keep:])
        # prompt tokens evaluated: a forced opening counts with the reply (completion), unless
        # it was cached too and its last token is decoded again for the logits
        opening = len(prepared.prefill)
        request.evaluated = len(request.feed) - (opening if len(request.feed) >= opening else 0)
        request.admitted = time.perf_counter()
        request.sampler = self._sampler(request)
        for token in prepared.prefill:  # the grammar and the penalties take the opening as written
            if not request.sampler.force(token):
                raise ModelError(f"{self.name}: the grammar refused the reply's opening "
                                 f"{prepared.prefill_text!r}: report this schema as a bug")
        request.completion = list(prepared.prefill)  # counted as the reply's, as max_tokens is
        request.text = prepared.prefill_text

    def _sampler(self, request: Request) -> Any:
        """llama-cpp-python's chain for these settings, grammar checked token by token."""
        s = request.sampling
        chain = llama_internals.LlamaSampler()
        chain.add_penalties(self.n_vocab, PENALTY_LAST_N, s.repeat_penalty, 0.0, 0.0)
        if s.temperature < 0:
            chain.add_dist(request.seed)
        elif s.temperature == 0:
            chain.add_greedy()
        else:
            chain.add_top_k(s.top_k)
            chain.add_typical(1.0, 1)
            chain.add_top_p(s.top_p, 1)
            chain.add_min_p(MIN_P, 1)
            chain.add_temp(s.temperature)
            chain.add_dist(request.seed)
        grammar = request.prepared.grammar
        if grammar is None:
            return chain
        only = llama_internals.LlamaSampler()
        only.add_grammar(self._model, grammar)
        return GrammarCheckedSampler(chain, only, self.n_vocab)

    def _step(self, active: list[Request]) -> None:
        """One llama_decode over every active sequence, then a sample for each that is due."""
        batch = self._batch
        n = 0
        outputs: list[tuple[Request, int]] = []
        # generated tokens first (one each), then prompt chunks in arrival order
        order = sorted(active, key=lambda r: len(r.feed) > 1)
        fed: list[tuple[Request, int]] = []
        for request in order:
            room = N_BATCH - n
            if room <= 0:
                break
            take = min(len(request.feed), room, PROMPT_CHUNK)
            slot = request.slot
            assert slot is not None
            base = len(slot.tokens)
            for i in range(take):
                batch.token[n] = request.feed[i]
                batch.pos[n] = base + i
                batch.n_seq_id[n] = 1
                batch.seq_id[n][0] = slot.seq
                batch.logits[n] = take == len(request.feed) and i == take - 1
                n += 1
            fed.append((request, take))
            if take == len(request.feed):
                outputs.append((request, n - 1))
        batch.n_tokens = n
        code = llama_cpp.llama_decode(self._ctx.ctx, batch)
        for slot in self.slots:
            slot.copying = False  # llama_decode made the pending copies first
        self.steps += 1
        self.batched_tokens += n
        self.max_active = max(self.max_active, len(fed))
        if code != 0:
            error = ModelError(f"{self.name}: llama_decode failed (code {code}) with {n} tokens "
                               f"of {len(fed)} sequences")
            for request, _ in fed:
                active.remove(request)
                self._clear(request.slot)  # type: ignore[arg-type]
                self._finish(request, error)
            return
        for request, take in fed:
            slot = request.slot
            assert slot is not None
            slot.tokens.extend(request.feed[:take])
            del request.feed[:take]
        for request, index in outputs:
            token = request.sampler.sample(self._ctx, index)
            done = self._accept(request, token)
            if done is not None:
                active.remove(request)
                self._finish(request, done)
            else:
                request.feed = [token]

    def _accept(self, request: Request, token: int) -> ChatResult | None:
        """Take a sampled token; the result when the request is complete (llama-cpp-python's
        stop rules: end of generation, a stop string, max_tokens)."""
        prepared, completion = request.prepared, request.completion
        finish = None
        if llama_cpp.llama_vocab_is_eog(self._model.vocab, token):
            finish = "stop"
        else:
            completion.append(token)
            request.text += self._model.detokenize([token])
            text = request.text
            for k, char in enumerate(text[-3:]):  # a multi-byte character still incomplete
                k = 3 - k
                for num, pattern in ((2, 192), (3, 224), (4, 240)):
                    if num > k and pattern & char == pattern:
                        request.multibyte = num - k
            if request.multibyte > 0:
                request.multibyte -= 1
            else:
                stops = [s for s in prepared.stop if s in text]
                if stops:
                    request.text = text[: text.index(stops[0])]
                    finish = "stop"
                elif len(completion) >= request.sampling.max_tokens:
                    finish = "length"
            slot = request.slot
            if finish is None and slot is not None and len(slot.tokens) >= self.n_ctx_seq:
                finish = "length"
        if finish is None:
            return None
        extra: dict[str, Any] = {"sequence": request.slot.seq if request.slot else None}
        sampler = request.sampler
        if isinstance(sampler, GrammarCheckedSampler):  # the model's likelihood, as per seat
            extra.update(logprob=sampler.logprob_sum, logprob_tokens=sampler.n_tokens)
        return ChatResult(
            text=request.text.decode("utf-8", errors="ignore"),
            prompt_tokens=len(prepared.prompt),
            prompt_tokens_evaluated=request.evaluated,
            completion_tokens=len(completion),
            seconds=time.perf_counter() - request.admitted,
            finish_reason=finish,
            extra=extra,
        )

    def _finish(self, request: Request, outcome: ChatResult | BaseException) -> None:
        slot = request.slot
        if slot is not None:
            slot.request = None
            slot.last_used = time.perf_counter()
            request.slot = None
        if request.sampler is not None:
            request.sampler.close()
            request.sampler = None
        self._deliver(request, outcome)

    @staticmethod
    def _deliver(request: Request, outcome: ChatResult | BaseException) -> None:
        def settle() -> None:
            if request.future.done():
                return
            if isinstance(outcome, BaseException):
                request.future.set_exception(outcome)
            else:
                request.future.set_result(outcome)

        try:
            request.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the caller's event loop is gone: nobody is waiting
            pass

    def _free(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx is not None:
            self._ctx.close()
            self._ctx = None
        if self._adapter is not None:
            llama_cpp.llama_adapter_lora_free(self._adapter)
            self._adapter = None
        if self._model is not None:
            self._model.close()
            self._model = None

    # ---- what the KV cache holds (tests, benchmarks)

    def sequence_tokens(self) -> dict[int, int]:
        """Tokens held per sequence, as llama.cpp reports it (pos_max + 1; 0 when empty)."""
        if self._ctx is None:
            return {}
        return {s.seq: int(llama_cpp.llama_memory_seq_pos_max(self._ctx.memory, s.seq)) + 1
                for s in self.slots}
