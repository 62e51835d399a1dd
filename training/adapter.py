"""The adapter stage: a fitted LoRA -> a committed GGUF LoRA adapter file beside its manifest.

    haggle train narrator-data --out adapters/narrator         # data/ narrator.jsonl + eval
    haggle train fit --data adapters/narrator/data/narrator.jsonl --out adapters/narrator ...
    haggle train adapter --out adapters/narrator               # narrator.lora.gguf + manifest

For small adapters of the embedded model the file itself is what ships (adapters/NAME/*.gguf,
at most 8 MB, committed): llama.cpp applies it to the embedded base at load, so nothing merged
or quantized is needed. The manifest records the base (reference, file, sha256), the data (files,
sha256, counts), the hyperparameters and steps, the eval loss before and after, the file (bytes,
sha256, which bot/llm/lora.py checks at every load) and its verification: llama.cpp's top-1
next tokens with the adapter against the peft model's on held-out prompts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bot.errors import DataError, ModelError
from training.manifest import file_entry, sha256_file, update_manifest, versions

MAX_ADAPTER_BYTES = 8 * 1024 * 1024


def _base_info(ref: str) -> tuple[Path, dict[str, Any]]:
    import gguf

    from training.modeling import resolve_base

    path = resolve_base(ref)
    if not path.is_file():
        raise ModelError(f"the adapter stage needs the base as a GGUF file (llama.cpp applies the "
                         f"adapter to it); {ref!r} is {path}")
    reader = gguf.GGUFReader(str(path))

    def get(key: str) -> int:
        field = reader.get_field(key)
        if field is None:
            raise ModelError(f"{path} has no {key}")
        return int(field.contents())

    shape = {"num_hidden_layers": get("llama.block_count"),
             "num_attention_heads": get("llama.attention.head_count"),
             "num_key_value_heads": get("llama.attention.head_count_kv")}
    return path, shape


def adapter_stage(out_dir: str | Path, *, adapter_dir: str | Path | None = None, name: str | None = None,
                  verify_prompts: int = 8, threads: int = 1, verify: bool = True) -> dict[str, Any]:
    """Write OUT/NAME.lora.gguf from the peft adapter (default OUT/adapter, else the newest
    checkpoint), verify it and record it in OUT/manifest.json; returns the manifest."""
    from training.lora_gguf import verify_lora_gguf, write_lora_gguf
    from training.verify import prompts_from_jsonl

    out_dir = Path(out_dir)
    name = name or out_dir.name
    if adapter_dir is None:
        adapter_dir = out_dir / "adapter"
        if not (adapter_dir / "adapter_model.safetensors").is_file():
            ckpts = sorted((out_dir / "checkpoints").glob("step-*"))
            if not ckpts:
                raise DataError(f"{out_dir} has no adapter/ and no checkpoint; run `haggle train fit` first")
            adapter_dir = ckpts[-1]
    adapter_dir = Path(adapter_dir)
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text(encoding="utf-8"))
    fit = _fit_record(out_dir, adapter_dir)
    base_ref = (fit.get("config") or {}).get("base") or "embedded"
    base_path, shape = _base_info(base_ref)
    target = write_lora_gguf(adapter_dir, out_dir / f"{name}.lora.gguf", base=shape, name=name)
    size = target.stat().st_size
    if size > MAX_ADAPTER_BYTES:
        raise ModelError(f"{target} is {size / 2**20:.1f} MB, over the 8 MB an adapter may weigh in "
                         "git; train a smaller lora_r")
    data_dir = out_dir / "data"
    eval_path = data_dir / f"{name}.eval.jsonl"
    train_path = data_dir / f"{name}.jsonl"
    report_path = data_dir / f"{name}.report.json"
    prompts = prompts_from_jsonl(eval_path, verify_prompts) if eval_path.is_file() else []
    verdict = verify_lora_gguf(base_ref, adapter_dir, target, prompts=prompts, threads=threads) \
        if prompts and verify else None
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
    if fit.get("eval_loss_after") is None and eval_path.is_file() and verify:
        fit["eval_loss_after"] = eval_loss(base_ref, adapter_dir, eval_path, fit.get("config") or {},
                                           threads=threads)
    data = {}
    for key, path in (("train", train_path), ("eval", eval_path)):
        if path.is_file():
            data[key] = {"path": str(path), "sha256": sha256_file(path),
                         "examples": sum(1 for line in path.open(encoding="utf-8") if line.strip())}
    if report:
        data["source"] = {"split": report.get("split"), "dialogues": report.get("dialogues"),
                          "trained_turns": report.get("trained_turns"), "targets": report.get("targets")}
    return update_manifest(
        out_dir, name=name, kind="lora-adapter",
        base={"ref": base_ref, "file": base_path.name, "sha256": sha256_file(base_path)},
        data=data,
        hyperparameters={"lora_r": cfg.get("r"), "lora_alpha": cfg.get("lora_alpha"),
                         "target_modules": sorted(cfg.get("target_modules") or []),
                         **(fit.get("config") or {})},
        fit={"steps": fit.get("steps"), "from": adapter_dir.name,
             "eval_loss_before": fit.get("eval_loss_before"),
             "eval_loss_after": fit.get("eval_loss_after"),
             "train_loss": [h.get("loss") for h in fit.get("history", [])],
             "input_tokens": (fit.get("counters") or {}).get("input_tokens", fit.get("input_tokens")),
             "train_seconds": (fit.get("counters") or {}).get("train_seconds", fit.get("train_seconds"))},
        adapter=file_entry(target, file=target.name, type="F16"),
        verify=verdict, versions=versions())


def _fit_record(out_dir: Path, adapter_dir: Path) -> dict[str, Any]:
    """What the fit recorded: fit.json for a finished fit of ``adapter_dir``; for a checkpoint
    (a fit stopped early), its state.pt (steps, losses, eval loss before, hyperparameters)."""
    if adapter_dir.name == "adapter" and (out_dir / "fit.json").is_file():
        return json.loads((out_dir / "fit.json").read_text(encoding="utf-8"))
    state_path = adapter_dir / "state.pt"
    if not state_path.is_file():
        return {}
    import torch

    state = torch.load(state_path, map_location="cpu", weights_only=False)
    hyper = dict((state.get("fingerprint") or {}).get("hyperparameters") or {})
    return {"steps": state.get("step"), "eval_loss_before": state.get("eval_before"),
            "history": state.get("history", []), "counters": state.get("counters", {}),
            "config": hyper}


def eval_loss(base_ref: str, adapter_dir: Path, eval_path: Path, config: dict[str, Any], *,
              threads: int = 1) -> float | None:
    """Mean per-token loss of the adapted model on the held-out narrations (as the fit measures)."""
    import torch
    from peft import PeftModel

    from training.examples import encode_all, read_chat_jsonl
    from training.fit import evaluate
    from training.modeling import load_model

    torch.set_num_threads(threads)
    loaded = load_model(base_ref)
    model = PeftModel.from_pretrained(loaded.model, str(adapter_dir)).eval()
    encoded, _ = encode_all(loaded.tokenizer, read_chat_jsonl(eval_path),
                            int(config.get("max_seq_len", 512)))
    return evaluate(model, encoded, int(config.get("batch_size", 4)), loaded.tokenizer.pad_token_id,
                    loaded.device)
