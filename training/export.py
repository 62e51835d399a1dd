"""Merged checkpoint -> F16 GGUF (with the `gguf` package) -> quantized GGUFs (llama.cpp).

The F16 file is the merged state dict in llama.cpp's layout:
- metadata: every key-value field of the base GGUF is copied (architecture hyperparameters,
  tokenizer, chat template) except the GGUF.* header fields, general.architecture (the writer
  sets it), general.file_type and general.quantization_version (set anew for F16);
- tensor names from ``gguf.get_tensor_name_map(MODEL_ARCH.LLAMA, n_layers)``;
- q_proj/k_proj rows permuted back into llama.cpp's rotary layout (with n_head and n_head_kv):
  transformers undid that permutation when it loaded the GGUF;
- lm_head left out when the embeddings are tied; matrices F16, norms (1-D) F32.
These choices were checked end to end on SmolLM2-135M: llama.cpp loaded the result and its
top-1 next token agreed with transformers on 27 of 27 positions (training/verify.py checks
every export the same way).

Every file is written under ``NAME.partial`` and renamed when complete, so nothing half-written
looks like a model; a full disk is a clear error and the partial file is removed.
"""

from __future__ import annotations

import ctypes
import errno
import json
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.errors import ModelError
from training.merge import read_source

log = logging.getLogger(__name__)

# Template fields not copied: header fields are written by the writer, the rest are set anew.
_NOT_COPIED = ("general.architecture", "general.file_type", "general.quantization_version")
# Template fields that must agree with the merged config, or the metadata describes another model.
_MUST_MATCH = {"llama.block_count": "num_hidden_layers", "llama.embedding_length": "hidden_size",
               "llama.attention.head_count": "num_attention_heads",
               "llama.attention.head_count_kv": "num_key_value_heads",
               "llama.feed_forward_length": "intermediate_size", "llama.vocab_size": "vocab_size"}


@dataclass(frozen=True)
class ExportedFile:
    path: Path
    file_type: str  # "F16", "Q8_0", ...


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def permute_rotary(weights: np.ndarray, n_head: int) -> np.ndarray:
    """HF q/k row order -> llama.cpp's (interleaved rotary pairs), as convert_hf_to_gguf does."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def unpermute_rotary(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order -> HF's: the inverse of permute_rotary."""
    return (weights.reshape(n_head, weights.shape[0] // n_head // 2, 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _template_for(merged_dir: Path, template_gguf: str | Path | None) -> Path:
    if template_gguf is not None:
        return Path(template_gguf)
    base_gguf = read_source(merged_dir).get("base_gguf")
    if base_gguf is None:
        raise ModelError(f"{merged_dir} was merged from an HF checkpoint, so there is no base GGUF "
                         "to copy tokenizer metadata from; pass template_gguf= a GGUF of the same "
                         "base model")
    return Path(base_gguf)


def _check_template(reader, config: dict, template: Path) -> None:
    arch = reader.get_field("general.architecture")
    if arch is None or arch.contents() != "llama":
        raise ModelError(f"{template} is not a llama GGUF; the template must be the base model's")
    for key, cfg_key in _MUST_MATCH.items():
        field = reader.get_field(key)
        if field is not None and cfg_key in config and field.contents() != config[cfg_key]:
            raise ModelError(f"{template} does not describe the merged model: {key} = "
                             f"{field.contents()} but {cfg_key} = {config[cfg_key]}; pass the "
                             "GGUF of the base model that was fine-tuned")


def _copy_metadata(reader, writer, name: str | None) -> None:
    import gguf

    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in _NOT_COPIED:
            continue
        vtype = field.types[0]
        sub_type = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        value = name if (field.name == gguf.Keys.General.NAME and name) else field.contents()
        writer.add_key_value(field.name, value, vtype, sub_type=sub_type)
    if name and reader.get_field(gguf.Keys.General.NAME) is None:
        writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def _tensor_plan(names: Iterable[str], config: dict) -> list[tuple[str, str]]:
    """(HF name, GGUF name) pairs in writing order; unknown tensors are an error."""
    import gguf

    n_layers = config["num_hidden_layers"]
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_layers)
    tied = bool(config.get("tie_word_embeddings", False))
    plan = []
    for hf_name in names:
        if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue
        gguf_name = tmap.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise ModelError(f"tensor {hf_name} has no llama.cpp name; only plain llama-family "
                             "checkpoints can be exported")
        plan.append((hf_name, gguf_name))
    return plan


def _gguf_array(hf_name: str, tensor, config: dict) -> np.ndarray:
    """One tensor as it goes into the F16 file: permuted if q/k, F16 if a matrix, F32 if 1-D."""
    arr = tensor.float().numpy()
    if hf_name.endswith("self_attn.q_proj.weight"):
        arr = permute_rotary(arr, config["num_attention_heads"])
    elif hf_name.endswith("self_attn.k_proj.weight"):
        arr = permute_rotary(arr, config["num_key_value_heads"])
    return arr.astype(np.float16 if arr.ndim >= 2 else np.float32)


def _disk_full(path: Path, needed: int | None, exc: BaseException | None = None) -> ModelError:
    free = shutil.disk_usage(path.parent).free
    need = f", about {needed / 2**30:.2f} GiB needed" if needed else ""
    return ModelError(f"disk full writing {path} ({free / 2**30:.2f} GiB free{need}); the partial "
                      f"file was removed: free space or choose another output directory"
                      + (f" ({exc})" if exc else ""))


def write_f16_gguf(merged_dir: str | Path, out_path: str | Path, *,
                   template_gguf: str | Path | None = None, name: str | None = None) -> Path:
    """Write the merged checkpoint in ``merged_dir`` as an F16 GGUF at ``out_path``.

    ``template_gguf`` (default: the base GGUF recorded at merge) supplies the metadata;
    ``name`` replaces general.name. Tensors are converted one at a time while writing, so peak
    memory stays near one tensor above the reader's memory map.
    """
    import gguf
    from safetensors import safe_open

    merged_dir, out_path = Path(merged_dir), Path(out_path)
    config = json.loads((merged_dir / "config.json").read_text(encoding="utf-8"))
    template = _template_for(merged_dir, template_gguf)
    reader = gguf.GGUFReader(template)
    _check_template(reader, config, template)

    weights = merged_dir / "model.safetensors"
    tmp = partial_path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with safe_open(str(weights), framework="pt") as st:
        plan = _tensor_plan(st.keys(), config)
        infos = []
        for hf_name, gguf_name in plan:
            shape = tuple(st.get_slice(hf_name).get_shape())
            dtype = np.dtype(np.float16 if len(shape) >= 2 else np.float32)
            infos.append((gguf_name, shape, dtype, int(np.prod(shape)) * dtype.itemsize))
        needed = sum(n for *_, n in infos) + 64 * 2**20
        if shutil.disk_usage(out_path.parent).free < needed:
            raise _disk_full(out_path, needed)

        writer = gguf.GGUFWriter(str(tmp), "llama")
        try:
            _copy_metadata(reader, writer, name)
            for gguf_name, shape, dtype, nbytes in infos:
                writer.add_tensor_info(gguf_name, shape, dtype, nbytes)
            writer.write_header_to_file()
            writer.write_kv_data_to_file()
            writer.write_ti_data_to_file()
            for hf_name, _ in plan:
                writer.write_tensor_data(_gguf_array(hf_name, st.get_tensor(hf_name), config))
            writer.close()
            os.replace(tmp, out_path)
        except OSError as exc:
            writer.close()
            tmp.unlink(missing_ok=True)
            if exc.errno == errno.ENOSPC:
                raise _disk_full(out_path, needed, exc) from exc
            raise ModelError(f"cannot write {out_path}: {exc}") from exc
        except BaseException:
            writer.close()
            tmp.unlink(missing_ok=True)
            raise
    log.info("wrote %s (%d tensors)", out_path, len(plan))
    return out_path


def quantize(src: str | Path, out_path: str | Path, file_type: str, *,
             threads: int | None = None) -> Path:
    """Quantize an F16 GGUF to ``file_type`` ("Q8_0", "Q4_K_M", ...) with llama.cpp, in-process."""
    import llama_cpp

    src, out_path = Path(src), Path(out_path)
    ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{file_type}", None)
    if ftype is None:
        raise ModelError(f"llama.cpp knows no quantization type {file_type!r}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = ftype
    params.nthread = threads or os.cpu_count() or 1
    tmp = partial_path(out_path)
    tmp.unlink(missing_ok=True)
    # llama.cpp logs every tensor it quantizes; keep that out of the console unless debugging.
    cpp_log = logging.getLogger("llama-cpp-python")
    saved_level = cpp_log.level
    cpp_log.setLevel(logging.DEBUG if log.isEnabledFor(logging.DEBUG) else logging.ERROR)
    try:
        rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(),
                                            ctypes.byref(params))
    finally:
        cpp_log.setLevel(saved_level)
    if rc != 0:
        tmp.unlink(missing_ok=True)
        if shutil.disk_usage(out_path.parent).free < src.stat().st_size // 2:
            raise _disk_full(out_path, None)
        raise ModelError(f"llama.cpp could not quantize {src} to {file_type} (code {rc}); run "
                         "with --verbose to see its log")
    os.replace(tmp, out_path)
    log.info("wrote %s", out_path)
    return out_path


def export(merged_dir: str | Path, out_dir: str | Path, *, stem: str,
           quant_types: Sequence[str] = ("Q4_K_M", "Q8_0"),
           template_gguf: str | Path | None = None, name: str | None = None) -> list[ExportedFile]:
    """Write ``out_dir/STEM.F16.gguf`` and ``out_dir/STEM.<TYPE>.gguf`` for each quant type."""
    out_dir = Path(out_dir)
    f16 = write_f16_gguf(merged_dir, out_dir / f"{stem}.F16.gguf", template_gguf=template_gguf,
                         name=name)
    files = [ExportedFile(f16, "F16")]
    for qtype in quant_types:
        files.append(ExportedFile(quantize(f16, out_dir / f"{stem}.{qtype}.gguf", qtype), qtype))
    return files
