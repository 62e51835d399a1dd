"""LoRA supervised fine-tuning: a plain torch loop, resumable, with assistant-only loss.

    python -c "from training.fit import fit; from training.config import TrainingConfig; \
               fit(TrainingConfig(max_steps=100), 'data/train.jsonl', 'adapters/seller')"

(normally run through `haggle train fit`). A plain loop rather than transformers' Trainer: the
whole procedure is on one page, and resuming is exact. Every input that decides the result is in
a checkpoint: LoRA weights, optimizer and scheduler state, the torch RNG (LoRA dropout) and a
fingerprint of the data and hyperparameters; the order of examples is a pure function of the
seed and the step, so a resumed run takes the very batches an uninterrupted run would have.

Layout under ``out_dir``:
    checkpoints/step-000050/   adapter + state.pt (the last ``keep_checkpoints`` are kept)
    adapter/                   the final LoRA adapter (peft format)
    fit.json                   losses, token counts, timings
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from bot.errors import DataError, HaggleError
from training.config import TrainingConfig
from training.examples import IGNORE, Encoded, encode_all, read_chat_jsonl
from training.manifest import sha256_file, write_json_atomic
from training.modeling import load_model

log = logging.getLogger(__name__)

# Keys that change how often we look or save, not what is learned: a resume may differ in them.
_NOT_FINGERPRINTED = {"eval_every", "save_every", "keep_checkpoints", "quant_types",
                      "verify_min_agreement_f16", "verify_min_agreement_quantized",
                      "verify_prompts"}


class ResumeError(HaggleError):
    """A checkpoint exists but was made from other data or hyperparameters."""


@dataclass
class FitResult:
    adapter_dir: Path
    steps: int
    train_examples: int
    eval_examples: int
    dropped_examples: int  # truncation left no assistant token
    loss_tokens: int  # assistant tokens that carried loss, over all steps
    input_tokens: int  # non-padding tokens run forward and backward, over all steps
    train_seconds: float  # time in optimizer steps (evals excluded)
    eval_loss_before: float | None
    eval_loss_after: float | None
    final_train_loss: float | None
    resumed_from: int | None
    history: list[dict] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.input_tokens / self.train_seconds if self.train_seconds > 0 else 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["adapter_dir"] = str(self.adapter_dir)
        out["tokens_per_second"] = round(self.tokens_per_second, 2)
        return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def split_eval(examples: list, fraction: float, seed: int) -> tuple[list, list]:
    """Hold out a seeded random ``fraction`` (at least one example when there are two or more)."""
    if fraction <= 0 or len(examples) < 2:
        return examples, []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = min(len(examples) - 1, max(1, round(len(examples) * fraction)))
    held = set(order[:n_eval])
    return ([e for i, e in enumerate(examples) if i not in held],
            [e for i, e in enumerate(examples) if i in held])


def attach_lora(model, cfg: TrainingConfig):
    """Wrap ``model`` in a peft LoRA model on ``cfg.target_modules``."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if cfg.load_in_4bit:
        model = prepare_model_for_kbit_training(model)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:  # peft: "Target modules {...} not found in the base model"
        raise DataError(f"training.target_modules = {list(cfg.target_modules)}: {exc}") from exc


def example_order(n_examples: int, seed: int, needed: int) -> list[int]:
    """Indices of the examples to train on, epoch after epoch, each epoch a seeded permutation."""
    order: list[int] = []
    epoch = 0
    while len(order) < needed:
        gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
        order.extend(torch.randperm(n_examples, generator=gen).tolist())
        epoch += 1
    return order[:needed]


def collate(batch: Sequence[Encoded], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-pad a micro-batch; padding gets attention 0 and label IGNORE."""
    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": ids.to(device), "labels": labels.to(device),
            "attention_mask": mask.to(device)}


def loss_sum(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Summed next-token cross-entropy over the labelled (assistant) positions."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = logits[:, :-1, :].float()
    targets = batch["labels"][:, 1:]
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1),
                           ignore_index=IGNORE, reduction="sum")


def n_loss_positions(batch: Sequence[Encoded]) -> int:
    """Labelled positions that can be predicted (the first token of a row never is)."""
    return sum(sum(1 for x in e.labels[1:] if x != IGNORE) for e in batch)


@torch.no_grad()
def evaluate(model, examples: Sequence[Encoded], batch_size: int, pad_id: int,
             device: torch.device) -> float | None:
    """Mean per-token loss on assistant tokens of ``examples`` (None when there are none)."""
    if not examples:
        return None
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i:i + batch_size]
        total += loss_sum(model, collate(chunk, pad_id, device)).item()
        count += n_loss_positions(chunk)
    model.train(was_training)
    return total / max(count, 1)


def fingerprint(cfg: TrainingConfig, data_hashes: dict[str, str | None]) -> dict:
    """What a checkpoint must agree on to be resumed."""
    hyper = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_FINGERPRINTED}
    return {"hyperparameters": hyper, "data": data_hashes}


def _checkpoints(out_dir: Path) -> list[Path]:
    ckpt_root = out_dir / "checkpoints"
    if not ckpt_root.is_dir():
        return []
    return sorted(p for p in ckpt_root.glob("step-*") if (p / "state.pt").is_file())


def save_checkpoint(model, optimizer, scheduler, out_dir: Path, step: int, state: dict,
                    keep: int) -> Path:
    """Write checkpoint ``step`` atomically (temp dir, then rename) and prune old ones."""
    root = out_dir / "checkpoints"
    final = root / f"step-{step:06d}"
    tmp = root / f".step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, save_embedding_layers=False)
    torch.save({**state, "step": step, "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                "python_rng": random.getstate()}, tmp / "state.pt")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in _checkpoints(out_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_resume_state(out_dir: Path, expected: dict) -> tuple[Path, dict] | None:
    """The newest checkpoint in ``out_dir`` and its state, checked against ``expected``.

    Runs before the model is loaded, so a mismatch fails in a second, not after minutes.
    """
    existing = _checkpoints(out_dir)
    if not existing:
        return None
    ckpt = existing[-1]
    state = torch.load(ckpt / "state.pt", map_location="cpu", weights_only=False)
    if state.get("fingerprint") != expected:
        theirs = state.get("fingerprint") or {}
        th, ours = theirs.get("hyperparameters", {}), expected["hyperparameters"]
        differ = sorted(k for k in set(th) | set(ours) if th.get(k) != ours.get(k))
        if theirs.get("data") != expected["data"]:
            differ.append("the training/eval data")
        raise ResumeError(f"{ckpt} was made with different inputs ({', '.join(differ)}); "
                          "use a new output directory, or delete its checkpoints/ to start over")
    return ckpt, state


def restore_checkpoint(model, optimizer, scheduler, ckpt: Path, state: dict) -> None:
    """Put a checkpoint's LoRA weights, optimizer, scheduler and RNG state back in place."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(ckpt / "adapter_model.safetensors")))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    random.setstate(state["python_rng"])


def fit(cfg: TrainingConfig, train_path: str | Path, out_dir: str | Path, *,
        eval_path: str | Path | None = None, device: str | None = None, resume: bool = True,
        progress: bool = True, threads: int | None = None) -> FitResult:
    """Fine-tune ``cfg.base`` with LoRA on the chat examples in ``train_path``.

    Eval loss (assistant tokens of ``eval_path``, or of a held-out ``cfg.eval_fraction`` of the
    training file) is measured before the first step, every ``cfg.eval_every`` steps and at the
    end. With ``resume`` a matching checkpoint in ``out_dir`` is continued from; a checkpoint made
    from other data or hyperparameters is an error rather than silently mixed in. Without it,
    existing checkpoints are deleted and training starts over.

    ``threads`` sets torch's CPU threads (default: torch's choice, one per core). On a machine
    shared with other busy processes, 1 thread can be several times faster than 2: OpenMP
    workers spin at every barrier waiting for a descheduled sibling (measured here, see
    bench/train_speed.py).
    """
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if threads is not None:
        torch.set_num_threads(threads)
    seed_everything(cfg.seed)

    train_msgs = read_chat_jsonl(train_path)
    if eval_path is not None:
        eval_msgs = read_chat_jsonl(eval_path)
    else:
        train_msgs, eval_msgs = split_eval(train_msgs, cfg.eval_fraction, cfg.seed)
    data_hashes = {"train": sha256_file(train_path),
                   "eval": sha256_file(eval_path) if eval_path is not None else None}

    expected = fingerprint(cfg, data_hashes)
    if not resume:  # starting over: stale checkpoints must not be resumed from later
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    resume_from = read_resume_state(out_dir, expected) if resume else None

    loaded = load_model(cfg.base, device=device, load_in_4bit=cfg.load_in_4bit)
    tok, dev = loaded.tokenizer, loaded.device
    train, dropped = encode_all(tok, train_msgs, cfg.max_seq_len)
    evals, dropped_eval = encode_all(tok, eval_msgs, cfg.max_seq_len)
    if not train:
        raise DataError(f"{train_path}: no example keeps an assistant token within "
                        f"training.max_seq_len = {cfg.max_seq_len}; raise it")
    if dropped or dropped_eval:
        log.warning("dropped %d training and %d eval examples: no assistant token within "
                    "max_seq_len=%d", dropped, dropped_eval, cfg.max_seq_len)

    model = attach_lora(loaded.model, cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.max_steps)
    pad_id = tok.pad_token_id

    start, history, resumed_from = 0, [], None
    counters = {"loss_tokens": 0, "input_tokens": 0, "train_seconds": 0.0}
    if resume_from is not None:
        ckpt, state = resume_from
        restore_checkpoint(model, optimizer, scheduler, ckpt, state)
        start = resumed_from = state["step"]
        history, counters, eval_before = state["history"], state["counters"], state["eval_before"]
        log.info("resumed from %s (step %d of %d)", ckpt, start, cfg.max_steps)
    else:
        eval_before = evaluate(model, evals, cfg.batch_size, pad_id, dev)

    per_step = cfg.batch_size * cfg.grad_accum
    order = example_order(len(train), cfg.seed, cfg.max_steps * per_step)
    eval_after = history[-1].get("eval_loss") if history and start == cfg.max_steps else None
    model.train()
    bar = tqdm(total=cfg.max_steps, initial=start, desc="LoRA fit", unit="step",
               disable=not progress)
    for step in range(start, cfg.max_steps):
        t0 = time.perf_counter()
        chosen = [train[i] for i in order[step * per_step:(step + 1) * per_step]]
        micro = [chosen[i:i + cfg.batch_size] for i in range(0, len(chosen), cfg.batch_size)]
        n_positions = max(n_loss_positions(chosen), 1)
        step_loss = 0.0
        for mb in micro:
            loss = loss_sum(model, collate(mb, pad_id, dev)) / n_positions
            loss.backward()
            step_loss += loss.item()
            counters["input_tokens"] += sum(len(e.input_ids) for e in mb)
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        counters["loss_tokens"] += n_positions
        counters["train_seconds"] += time.perf_counter() - t0

        done = step + 1
        record = {"step": done, "loss": round(step_loss, 6), "lr": scheduler.get_last_lr()[0]}
        if done % cfg.eval_every == 0 or done == cfg.max_steps:
            record["eval_loss"] = evaluate(model, evals, cfg.batch_size, pad_id, dev)
            eval_after = record["eval_loss"]
        history.append(record)
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss:.4f}")
        if done % cfg.save_every == 0 or done == cfg.max_steps:
            save_checkpoint(model, optimizer, scheduler, out_dir, done,
                            {"fingerprint": expected, "history": history, "counters": counters,
                             "eval_before": eval_before}, cfg.keep_checkpoints)
    bar.close()

    adapter_dir = out_dir / "adapter"
    tmp = out_dir / ".adapter.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, save_embedding_layers=False)
    shutil.rmtree(adapter_dir, ignore_errors=True)
    tmp.rename(adapter_dir)

    result = FitResult(
        adapter_dir=adapter_dir, steps=cfg.max_steps, train_examples=len(train),
        eval_examples=len(evals), dropped_examples=dropped + dropped_eval,
        loss_tokens=counters["loss_tokens"], input_tokens=counters["input_tokens"],
        train_seconds=round(counters["train_seconds"], 3), eval_loss_before=eval_before,
        eval_loss_after=eval_after, final_train_loss=history[-1]["loss"] if history else None,
        resumed_from=resumed_from, history=history)
    write_json_atomic(out_dir / "fit.json", {**result.to_dict(), "config": cfg.to_dict(),
                                             "base": str(loaded.path), "data": data_hashes})
    if eval_after is not None and not math.isfinite(eval_after):
        raise DataError(f"eval loss became {eval_after}: training diverged; lower "
                        "training.learning_rate")
    return result
