"""Derived GGUFs: a model rewritten in another file type once, cached outside the repository.

``[models.NAME] batch_format = "F16"`` (backend ``llamacpp-batched``) makes the batched engine
run its model in that file type instead of the one shipped: the embedded SmolLM2-135M is Q4_1,
a type ggml's x86 batched matrix kernels (llamafile's tinyBLAS, the repacked GEMMs) do not
cover, so one step over 12 sequences costs almost 12 single steps; F16 and Q8_0 have those
kernels (docs/batching.md has the measurements).

The derived file is written at the model's first load with llama.cpp's own quantizer
(``llama_model_quantize``, ``allow_requantize``: a quantized source is dequantized to f32 and
written in the new type; to F16 or Q8_0 that loses only rounding, to Q4_0 it loses more), with
no network, into the model cache: ``$HAGGLE_MODEL_CACHE``, by default
``$XDG_CACHE_HOME/haggle/models`` (``~/.cache/haggle/models``), beside the data cache. Its name
carries the source's sha256; a JSON record beside it holds the source's and the file's sha256,
and a file that no longer matches its record is written again. Edge module: reads and writes
files.
"""

from __future__ import annotations

import ctypes
import datetime
import fcntl
import json
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from bot.errors import ModelError
from bot.files import cache_home, file_sha256

if TYPE_CHECKING:
    from bot.llm.models import GGUFInfo

log = logging.getLogger(__name__)

ENV_MODEL_CACHE = "HAGGLE_MODEL_CACHE"
# file type name -> llama.cpp's LLAMA_FTYPE_MOSTLY_* value (llama.h; stable across versions)
FORMATS = {"F16": 1, "Q4_0": 2, "Q4_1": 3, "Q8_0": 7}

_lock = threading.Lock()


def model_cache_home() -> Path:
    """The model cache: $HAGGLE_MODEL_CACHE, else $XDG_CACHE_HOME/haggle/models."""
    return cache_home(ENV_MODEL_CACHE, "models")


def check_format(name: str) -> str:
    if name not in FORMATS:
        raise ModelError(f"file type {name!r} is not one of {', '.join(FORMATS)}")
    return name


def derived_path(source: Path, fmt: str, source_sha256: str, home: Path) -> Path:
    return home / f"{source.stem}.{source_sha256[:16]}.{fmt}.gguf"


def _record_of(path: Path) -> dict | None:
    try:
        record = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def derived_gguf(info: GGUFInfo, fmt: str, *, home: str | Path | None = None,
                 threads: int = 1) -> Path:
    """The GGUF ``info`` describes (``inspect_gguf(path)``, with its sha256) rewritten in file
    type ``fmt``: from the cache, or written now; the file itself when it already is that type.
    Raises ModelError when llama.cpp cannot write it (the message says where and why)."""
    source = Path(info.path)
    check_format(fmt)
    if info.sha256 is None:
        raise ModelError(f"{source}: derived_gguf needs the source's sha256 (inspect_gguf(path))")
    if info.quantization == fmt:
        return source
    home = Path(home) if home is not None else model_cache_home()
    target = derived_path(source, fmt, info.sha256, home)
    with _lock:
        try:
            home.mkdir(parents=True, exist_ok=True)
            with (home / f".{target.name}.lock").open("w") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be writing it now
                if _matches(target, info.sha256):
                    return target
                _write(source, target, fmt, info.sha256, info.quantization, threads)
        except OSError as exc:
            raise ModelError(f"cannot write {fmt} copy of {source} into {home} ({exc}); set "
                             f"{ENV_MODEL_CACHE} to a writable folder or drop batch_format") from exc
    return target


def _matches(target: Path, source_sha256: str) -> bool:
    record = _record_of(target)
    if record is None or not target.is_file():
        return False
    if record.get("source_sha256") != source_sha256:
        return False
    if target.stat().st_size != record.get("bytes") or file_sha256(target) != record.get("sha256"):
        log.warning("%s differs from its record %s: writing it again", target,
                    target.with_suffix(".json"))
        return False
    return True


def _write(source: Path, target: Path, fmt: str, source_sha256: str, source_type: str,
           threads: int) -> None:
    import llama_cpp

    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FORMATS[fmt]
    params.allow_requantize = True  # the source is quantized: dequantize, then write as fmt
    params.nthread = max(1, threads)
    log.info("writing %s as %s into %s (once)", source, fmt, target)
    try:
        code = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(),
                                              ctypes.byref(params))
        if code != 0 or not partial.is_file():
            raise ModelError(f"llama.cpp could not write {source} as {fmt} (code {code})")
        record = {"source": str(source), "source_sha256": source_sha256,
                  "source_type": source_type, "format": fmt, "bytes": partial.stat().st_size,
                  "sha256": file_sha256(partial), "llama_cpp_python": llama_cpp.__version__,
                  "written": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")}
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    target.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
