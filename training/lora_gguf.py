"""A peft LoRA adapter -> a GGUF LoRA adapter file that llama.cpp applies to its base at load.

    haggle train adapter --out adapters/narrator      # adapter/ (peft) -> narrator.lora.gguf

The layout is the one llama.cpp's convert_lora_to_gguf.py writes and llama-adapter.cpp reads:
- key-values: general.architecture = the base's ("llama"), general.type = "adapter",
  adapter.type = "lora", adapter.lora.alpha = alpha (llama.cpp scales by alpha / r, r read from
  the tensors);
- per adapted matrix two tensors, ``<llama.cpp name>.weight.lora_a`` of numpy shape (r, in) and
  ``.lora_b`` of shape (out, r) (ggml's ne is numpy's shape reversed, so ne = (in, r) and
  (r, out), which is what llama.cpp checks against the base tensor), F16 (or F32);
- llama.cpp stores q_proj and k_proj rows in its rotary layout (export.permute_rotary), so the
  rows of lora_b of q and k are permuted the same way (lora_a acts on the input side and is not).

Small: SmolLM2-135M (30 layers, hidden 576, kv 192) on q/k/v/o at r=16 is ~3.7 MB in F16. No base
weights are copied, so the file is only usable on the base it was trained on; the manifest
records that base's sha256 and the loader (bot/llm/lora.py) checks it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from bot.errors import ModelError
from training.export import partial_path, permute_rotary, unpermute_rotary

_PEFT_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+)\.lora_(?P<ab>[AB])(?:\.default)?\.weight$")


def read_peft_adapter(adapter_dir: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(adapter_config.json, {peft key: float32 array}) of a peft adapter folder."""
    from safetensors.numpy import load_file

    adapter_dir = Path(adapter_dir)
    cfg_path, weights = adapter_dir / "adapter_config.json", adapter_dir / "adapter_model.safetensors"
    if not cfg_path.is_file() or not weights.is_file():
        raise ModelError(f"{adapter_dir} is not a peft adapter folder (adapter_config.json and "
                         "adapter_model.safetensors); run `haggle train fit` first")
    config = json.loads(cfg_path.read_text(encoding="utf-8"))
    tensors = {k: v.astype(np.float32) for k, v in load_file(str(weights)).items()}
    return config, tensors


def lora_tensors(config: dict, tensors: dict[str, np.ndarray], base: dict) -> list[tuple[str, np.ndarray]]:
    """(GGUF name, array) of every lora_a / lora_b, in llama.cpp's layout.

    ``base`` holds the base's num_hidden_layers, num_attention_heads and num_key_value_heads.
    """
    import gguf

    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, base["num_hidden_layers"])
    pairs: dict[str, dict[str, np.ndarray]] = {}
    for key, arr in tensors.items():
        m = _PEFT_KEY.match(key)
        if m is None:
            raise ModelError(f"adapter tensor {key} is not a LoRA A/B matrix; only plain LoRA "
                             "(no modules_to_save, no DoRA) can be written for llama.cpp")
        pairs.setdefault(m["module"], {})[m["ab"]] = arr
    out = []
    for module in sorted(pairs, key=_layer_order):
        ab = pairs[module]
        if set(ab) != {"A", "B"}:
            raise ModelError(f"adapter module {module} lacks its lora_A or lora_B matrix")
        name = tmap.get_name(module + ".weight", try_suffixes=(".weight",))
        if name is None:
            raise ModelError(f"adapter module {module} has no llama.cpp tensor name")
        a, b = ab["A"], ab["B"]
        if module.endswith("self_attn.q_proj"):
            b = permute_rotary(b, base["num_attention_heads"])
        elif module.endswith("self_attn.k_proj"):
            b = permute_rotary(b, base["num_key_value_heads"])
        out.append((f"{name}.lora_a", a))
        out.append((f"{name}.lora_b", b))
    if not out:
        raise ModelError("the adapter holds no LoRA matrices")
    return out


def load_lora_gguf(peft_model, path: str | Path) -> int:
    """Copy the GGUF LoRA adapter at ``path`` into ``peft_model``'s LoRA matrices (a fit that
    continues a shipped adapter starts from it); returns how many modules were set.

    The inverse of write_lora_gguf: the same tensor names, lora_b of q and k permuted back to
    HF's row order. r, alpha and the adapted modules must be the model's own."""
    import gguf
    import torch

    reader = gguf.GGUFReader(str(path))
    field = reader.get_field("adapter.lora.alpha")
    if field is None or reader.get_field("adapter.type") is None:
        raise ModelError(f"{path} is not a GGUF LoRA adapter (no adapter.type / adapter.lora.alpha)")
    alpha = float(field.contents())
    arrays = {t.name: np.asarray(t.data, dtype=np.float32) for t in reader.tensors}
    config = peft_model.config
    tmap = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    used = set()
    for qualified, module in peft_model.named_modules():
        if not hasattr(module, "lora_A") or "default" not in module.lora_A:
            continue
        hf = qualified.removeprefix("base_model.model.")
        name = tmap.get_name(hf + ".weight", try_suffixes=(".weight",))
        a, b = arrays.get(f"{name}.lora_a"), arrays.get(f"{name}.lora_b")
        if a is None or b is None:
            raise ModelError(f"{path} has no LoRA matrices for {hf} ({name}); train the init "
                             "adapter on the same target_modules")
        r = module.r["default"]
        if a.shape[0] != r or module.lora_alpha["default"] != alpha:
            raise ModelError(f"{path} has r={a.shape[0]}, alpha={alpha:g}; this fit has r={r}, "
                             f"alpha={module.lora_alpha['default']:g}: set lora_r and lora_alpha "
                             "to the init adapter's")
        if hf.endswith("self_attn.q_proj"):
            b = unpermute_rotary(b, config.num_attention_heads)
        elif hf.endswith("self_attn.k_proj"):
            b = unpermute_rotary(b, config.num_key_value_heads)
        weight_a, weight_b = module.lora_A["default"].weight, module.lora_B["default"].weight
        if tuple(weight_a.shape) != a.shape or tuple(weight_b.shape) != b.shape:
            raise ModelError(f"{path}: {name} has shapes {a.shape}, {b.shape}; the model's are "
                             f"{tuple(weight_a.shape)}, {tuple(weight_b.shape)} (another base?)")
        with torch.no_grad():
            weight_a.copy_(torch.from_numpy(a))
            weight_b.copy_(torch.from_numpy(np.ascontiguousarray(b)))
        used.update((f"{name}.lora_a", f"{name}.lora_b"))
    extra = sorted(set(arrays) - used)
    if extra:
        raise ModelError(f"{path} adapts modules this fit does not ({extra[0]}, ...); set "
                         "target_modules to the init adapter's")
    return len(used) // 2


def _layer_order(module: str) -> tuple[int, str]:
    m = re.search(r"\.layers\.(\d+)\.", module)
    return (int(m.group(1)) if m else -1, module)


def write_lora_gguf(adapter_dir: str | Path, out_path: str | Path, *, base: dict,
                    name: str = "narrator", dtype: str = "F16") -> Path:
    """Write ``adapter_dir`` (peft) as a GGUF LoRA adapter at ``out_path`` (atomically)."""
    import gguf

    config, tensors = read_peft_adapter(adapter_dir)
    if config.get("use_dora") or config.get("modules_to_save"):
        raise ModelError(f"{adapter_dir}: DoRA and modules_to_save cannot be written as a llama.cpp "
                         "LoRA adapter; train plain LoRA")
    alpha = float(config["lora_alpha"])
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_path(out_path)
    writer = gguf.GGUFWriter(str(tmp), arch="llama")
    writer.add_string("general.type", "adapter")
    writer.add_name(name)
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", alpha)
    np_type = np.float16 if dtype == "F16" else np.float32
    for tname, arr in lora_tensors(config, tensors, base):
        writer.add_tensor(tname, np.ascontiguousarray(arr.astype(np_type)))
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()
    tmp.replace(out_path)
    return out_path


def verify_lora_gguf(base_ref: str | Path, adapter_dir: str | Path, adapter_gguf: str | Path, *,
                     prompts, max_tokens: int = 256, threads: int = 1) -> dict:
    """Top-1 next-token agreement of llama.cpp (base GGUF + the adapter file) with the peft
    model (the same base in transformers + the peft adapter) over ``prompts``' tokens."""
    from llama_cpp import Llama
    from peft import PeftModel

    from training.modeling import load_model, resolve_base
    from training.verify import gguf_top1, prompt_ids, reference_top1

    loaded = load_model(base_ref)
    model = PeftModel.from_pretrained(loaded.model, str(adapter_dir)).eval()
    encoded = [ids for _, ids in (prompt_ids(loaded.tokenizer, p, max_tokens) for p in prompts)
               if len(ids) >= 2]
    if not encoded:
        raise ModelError("no verification prompt has two tokens or more")
    reference = [reference_top1(model, ids) for ids in encoded]
    base_path = resolve_base(base_ref)
    n_ctx = max(len(ids) for ids in encoded) + 16
    agreed = positions = 0
    for lora in (str(adapter_gguf), None):
        llm = Llama(model_path=str(base_path), lora_path=lora, n_ctx=n_ctx, n_batch=n_ctx,
                    logits_all=True, n_threads=threads, verbose=False)
        try:
            got = [gguf_top1(llm, ids) for ids in encoded]
        finally:
            llm.close()
        hits = sum(a == b for g, r in zip(got, reference, strict=False) for a, b in zip(g, r, strict=False))
        if lora is not None:
            agreed, positions = hits, sum(len(ids) for ids in encoded)
        else:
            without = hits  # the base alone against the peft model: what the adapter changes
    return {"prompts": len(encoded), "positions": positions, "agreed": agreed,
            "agreement": round(agreed / positions, 4) if positions else 0.0,
            "base_alone_agreement": round(without / positions, 4) if positions else 0.0}
