"""LoRA supervised fine-tuning: a plain torch loop, resumable, with assistant-only loss.

    python -c "from training.fit import fit; from training.config import TrainingConfig; \
               fit(TrainingConfig(max_steps=100), 'data/train.jsonl', 'adapters/seller')"

(normally run through `haggle train fit`). A plain loop rather than transformers' Trainer: the
whole procedure is on one page, and resuming is exact. Every input that decides the result is a
pure function of the seed and the step or is in a checkpoint: the order of examples and the LoRA
dropout seed of each micro-batch are derived from (seed, step, micro-batch), and a checkpoint
holds the LoRA weights, optimizer and scheduler state and a fingerprint of the data and
hyperparameters; a resumed run takes the very batches an uninterrupted run would have.

Several processes (`accelerate launch --num_processes N -m bot.cli train fit ...`, one per GPU)
train one model with DistributedDataParallel through accelerate: an optimizer step takes
``batch_size * grad_accum * N`` examples, each process its own contiguous share, and the
gradients are averaged with weights that make the step equal to one process taking all of them
with ``grad_accum * N`` micro-batches (tests/test_training_distributed.py checks this on CPU
with gloo). Only the main process writes checkpoints, the adapter and fit.json.

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
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from bot.errors import DataError, HaggleError
from training.config import TrainingConfig
from training.examples import IGNORE, Encoded, encode_all, read_chat_jsonl
from training.manifest import sha256_file, write_json_atomic
from training.modeling import load_model, pick_device

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
    device: str  # where it trained ("cpu", "cuda:0")
    dtype: str  # the base model's dtype there ("float32", "bfloat16")
    history: list[dict] = field(default_factory=list)
    processes: int = 1  # data-parallel processes that trained it
    main_process: bool = True  # False in the other processes of a multi-process launch

    @property
    def tokens_per_second(self) -> float:
        return self.input_tokens / self.train_seconds if self.train_seconds > 0 else 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("main_process")
        out["adapter_dir"] = str(self.adapter_dir)
        out["tokens_per_second"] = round(self.tokens_per_second, 2)
        return out


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def micro_seed(seed: int, step: int, micro: int) -> int:
    """The torch seed for micro-batch ``micro`` (counted over all processes) of ``step``: LoRA
    dropout is then the same whether a step runs in one process or in several, and on resume."""
    return (seed * 1_000_003 + step * 1_009 + micro) % (2**63 - 1)


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

    if cfg.load_in_4bit:  # turns on gradient checkpointing; the non-reentrant kind works in DDP
        model = prepare_model_for_kbit_training(
            model, gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), bias="none", task_type="CAUSAL_LM")
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:  # peft: "Target modules {...} not found in the base model"
        raise DataError(f"training.target_modules = {list(cfg.target_modules)}: {exc}") from exc


def init_adapter_file(cfg: TrainingConfig) -> Path | None:
    """The GGUF LoRA file ``cfg.init_adapter`` names (a folder resolves through its manifest,
    which must be of this base), or None for a fresh LoRA."""
    if not cfg.init_adapter.strip():
        return None
    from bot.llm.lora import resolve_lora
    from training.modeling import resolve_base

    base = resolve_base(cfg.base)  # a GGUF file, or an HF checkpoint folder (no sha256 to check)
    return resolve_lora(cfg.init_adapter, base=base if base.is_file() else None)


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
             device: torch.device, accelerator=None) -> float | None:
    """Mean per-token loss on assistant tokens of ``examples`` (None when there are none).

    With an ``accelerator`` of several processes each evaluates every N-th example and the sums
    are added up across processes, so every process gets the same, whole-set number.
    """
    if not examples:
        return None
    rank, world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
    mine = list(examples[rank::world])
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(mine), batch_size):
        chunk = mine[i:i + batch_size]
        total += loss_sum(model, collate(chunk, pad_id, device)).item()
        count += n_loss_positions(chunk)
    model.train(was_training)
    if world > 1:
        sums = accelerator.reduce(torch.tensor([total, count], dtype=torch.float64,
                                               device=device), reduction="sum")
        total, count = sums.tolist()
    return total / max(count, 1)


def fingerprint(cfg: TrainingConfig, data_hashes: dict[str, str | None],
                processes: int = 1) -> dict:
    """What a checkpoint must agree on to be resumed (the process count sets the batch)."""
    hyper = {k: v for k, v in cfg.to_dict().items() if k not in _NOT_FINGERPRINTED}
    return {"hyperparameters": {**hyper, "processes": processes}, "data": data_hashes}


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
                "scheduler": scheduler.state_dict()}, tmp / "state.pt")
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
    """Put a checkpoint's LoRA weights, optimizer and scheduler state back in place."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    set_peft_model_state_dict(model, load_file(str(ckpt / "adapter_model.safetensors")))
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])


def _on_cpu(device: str | None) -> bool:
    return pick_device(device)[0].type == "cpu"  # pick_device: a clear error for missing CUDA


def process_state(device: str | None):
    """accelerate's view of this process (joins a launched process group; see make_accelerator)."""
    from accelerate import PartialState

    return PartialState(cpu=_on_cpu(device))


def make_accelerator(device: str | None):
    """accelerate's Accelerator for ``device`` ("cpu", "cuda" or None: CUDA when present).

    In a plain run it is one process on one device; under `accelerate launch` or torchrun it
    joins the launched process group (NCCL on GPUs, gloo on CPUs) on this process's device.
    """
    from accelerate import Accelerator

    return Accelerator(cpu=_on_cpu(device))


def end_process_group() -> None:
    """Leave a launched process group (a no-op in a plain run); after the fit nothing is shared."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def fit(cfg: TrainingConfig, train_path: str | Path, out_dir: str | Path, *,
        eval_path: str | Path | None = None, device: str | None = None, resume: bool = True,
        progress: bool = True, threads: int | None = None) -> FitResult:
    """Fine-tune ``cfg.base`` with LoRA on the chat examples in ``train_path``.

    Eval loss (assistant tokens of ``eval_path``, or of a held-out ``cfg.eval_fraction`` of the
    training file) is measured before the first step, every ``cfg.eval_every`` steps and at the
    end. With ``resume`` a matching checkpoint in ``out_dir`` is continued from; a checkpoint made
    from other data or hyperparameters is an error rather than silently mixed in. Without it,
    existing checkpoints are deleted and training starts over.

    Run under `accelerate launch --num_processes N` it trains data-parallel (see the module
    docstring); every process returns the result, and ``main_process`` says which one wrote it.

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
    accelerator = make_accelerator(device)
    rank, world, main = (accelerator.process_index, accelerator.num_processes,
                         accelerator.is_main_process)

    train_msgs = read_chat_jsonl(train_path)
    if eval_path is not None:
        eval_msgs = read_chat_jsonl(eval_path)
    else:
        train_msgs, eval_msgs = split_eval(train_msgs, cfg.eval_fraction, cfg.seed)
    data_hashes = {"train": sha256_file(train_path),
                   "eval": sha256_file(eval_path) if eval_path is not None else None}
    init_file = init_adapter_file(cfg)
    if init_file is not None:  # a checkpoint begun from another adapter must not be resumed
        data_hashes["init_adapter"] = sha256_file(init_file)

    expected = fingerprint(cfg, data_hashes, world)
    if not resume and main:  # starting over: stale checkpoints must not be resumed from later
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    accelerator.wait_for_everyone()
    resume_from = read_resume_state(out_dir, expected) if resume else None

    loaded = load_model(cfg.base, device=str(accelerator.device), load_in_4bit=cfg.load_in_4bit)
    tok, dev = loaded.tokenizer, loaded.device
    train, dropped = encode_all(tok, train_msgs, cfg.max_seq_len)
    evals, dropped_eval = encode_all(tok, eval_msgs, cfg.max_seq_len)
    if not train:
        raise DataError(f"{train_path}: no example keeps an assistant token within "
                        f"training.max_seq_len = {cfg.max_seq_len}; raise it")
    if (dropped or dropped_eval) and main:
        log.warning("dropped %d training and %d eval examples: no assistant token within "
                    "max_seq_len=%d", dropped, dropped_eval, cfg.max_seq_len)

    peft_model = attach_lora(loaded.model, cfg)
    if init_file is not None and resume_from is None:
        from training.lora_gguf import load_lora_gguf

        modules = load_lora_gguf(peft_model, init_file)
        if main:
            log.info("starting from %s (%d adapted modules)", init_file, modules)
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.max_steps)
    pad_id = tok.pad_token_id

    start, history, resumed_from = 0, [], None
    counters = {"loss_tokens": 0, "input_tokens": 0, "train_seconds": 0.0}
    if resume_from is not None:
        ckpt, state = resume_from
        restore_checkpoint(peft_model, optimizer, scheduler, ckpt, state)
        start = resumed_from = state["step"]
        history, counters, eval_before = state["history"], state["counters"], state["eval_before"]
        if main:
            log.info("resumed from %s (step %d of %d)", ckpt, start, cfg.max_steps)
    else:
        eval_before = evaluate(peft_model, evals, cfg.batch_size, pad_id, dev, accelerator)
    # DistributedDataParallel around the LoRA model when launched with several processes; the
    # optimizer and scheduler stay plain torch (accelerate's scheduler wrapper would step N times).
    model = accelerator.prepare_model(peft_model, device_placement=False)

    local = cfg.batch_size * cfg.grad_accum  # examples per step in each process
    per_step = local * world
    order = example_order(len(train), cfg.seed, cfg.max_steps * per_step)
    eval_after = history[-1].get("eval_loss") if history and start == cfg.max_steps else None
    model.train()
    bar = tqdm(total=cfg.max_steps, initial=start, desc="LoRA fit", unit="step",
               disable=not (progress and main))
    for step in range(start, cfg.max_steps):
        t0 = time.perf_counter()
        chosen = [train[i] for i in order[step * per_step:(step + 1) * per_step]]
        mine = chosen[rank * local:(rank + 1) * local]
        micro = [mine[i:i + cfg.batch_size] for i in range(0, len(mine), cfg.batch_size)]
        # Each process's gradient is averaged over the processes: scaling by their number makes
        # the step the gradient of the summed loss over all chosen examples / their positions.
        n_positions = max(n_loss_positions(chosen), 1)
        step_loss = 0.0
        for j, mb in enumerate(micro):
            torch.manual_seed(micro_seed(cfg.seed, step, rank * len(micro) + j))
            last = j == len(micro) - 1
            with nullcontext() if last else accelerator.no_sync(model):
                loss = loss_sum(model, collate(mb, pad_id, dev)) / n_positions
                accelerator.backward(loss * world)
            step_loss += loss.item()
        if world > 1:  # the logged loss is the whole step's, not this process's share
            step_loss = accelerator.reduce(torch.tensor(step_loss, dtype=torch.float64,
                                                        device=dev), reduction="sum").item()
        torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        counters["loss_tokens"] += n_positions
        counters["input_tokens"] += sum(len(e.input_ids) for e in chosen)
        counters["train_seconds"] += time.perf_counter() - t0

        done = step + 1
        record = {"step": done, "loss": round(step_loss, 6), "lr": scheduler.get_last_lr()[0]}
        if done % cfg.eval_every == 0 or done == cfg.max_steps:
            record["eval_loss"] = evaluate(peft_model, evals, cfg.batch_size, pad_id, dev,
                                           accelerator)
            eval_after = record["eval_loss"]
        history.append(record)
        bar.update(1)
        bar.set_postfix(loss=f"{step_loss:.4f}")
        if main and (done % cfg.save_every == 0 or done == cfg.max_steps):
            save_checkpoint(peft_model, optimizer, scheduler, out_dir, done,
                            {"fingerprint": expected, "history": history, "counters": counters,
                             "eval_before": eval_before}, cfg.keep_checkpoints)
    bar.close()

    adapter_dir = out_dir / "adapter"
    result = FitResult(
        adapter_dir=adapter_dir, steps=cfg.max_steps, train_examples=len(train),
        eval_examples=len(evals), dropped_examples=dropped + dropped_eval,
        loss_tokens=counters["loss_tokens"], input_tokens=counters["input_tokens"],
        train_seconds=round(counters["train_seconds"], 3), eval_loss_before=eval_before,
        eval_loss_after=eval_after, final_train_loss=history[-1]["loss"] if history else None,
        resumed_from=resumed_from, device=str(dev),
        dtype=str(loaded.model.dtype).removeprefix("torch."), history=history,
        processes=world, main_process=main)
    if main:
        tmp = out_dir / ".adapter.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        peft_model.save_pretrained(tmp, save_embedding_layers=False)
        shutil.rmtree(adapter_dir, ignore_errors=True)
        tmp.rename(adapter_dir)
        write_json_atomic(out_dir / "fit.json", {**result.to_dict(), "config": cfg.to_dict(),
                                                 "base": str(loaded.path), "data": data_hashes})
    accelerator.wait_for_everyone()  # the adapter is on disk before any process moves on
    if eval_after is not None and not math.isfinite(eval_after):
        raise DataError(f"eval loss became {eval_after}: training diverged; lower "
                        "training.learning_rate")
    return result

