"""The GPU check's own logic, on the CPU: the sdist trim, the report, the comparisons, pick_device.

The device run itself (bench/gpu_check.sh) is documented in docs/gpu.md; these tests keep the
parts that decide its verdicts honest without a GPU.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "gpu"


def _load(name: str, file: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{file}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


prepare = _load("gpu_prepare", "prepare")
check = _load("gpu_check", "check")
steps = _load("gpu_steps", "steps")


def _touch(root: Path, rel: str, size: int = 10) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)


def fake_sdist(root: Path) -> Path:
    """An sdist-shaped tree: everything REQUIRED plus the bulk the trim must drop."""
    for rel in prepare.REQUIRED:
        _touch(root, rel if Path(rel).suffix else f"{rel}/CMakeLists.txt")
    llama = prepare.LLAMA
    bulk = [".git/objects/pack/p.pack", "docs/index.md", "examples/x.py", "tests/t.py",
            f"{llama}/models/ggml-vocab-llama-bpe.gguf", f"{llama}/docs/build.md",
            f"{llama}/media/logo.png", f"{llama}/tests/test-backend-ops.cpp",
            f"{llama}/examples/simple/simple.cpp", f"{llama}/tools/server/server.cpp",
            f"{llama}/tools/ui/bundle.js", f"{llama}/convert_hf_to_gguf.py",
            f"{llama}/gguf-py/gguf/__init__.py", f"{llama}/ggml/src/ggml-vulkan/ggml-vulkan.cpp",
            f"{llama}/ggml/src/ggml-metal/ggml-metal.m", f"{llama}/ggml/src/ggml-sycl/x.cpp",
            f"{llama}/ggml/src/ggml-hip/CMakeLists.txt"]
    for rel in bulk:
        _touch(root, rel, 1000)
    _touch(root, f"{llama}/ggml/src/ggml-cuda/template-instances/mmq-instance-q8_0.cu")
    _touch(root, f"{llama}/ggml/src/ggml.c")
    _touch(root, f"{llama}/tools/mtmd/clip.cpp")
    return root


def test_trim_keeps_what_the_cuda_build_reads_and_drops_the_bulk(tmp_path):
    root = fake_sdist(tmp_path / "sdist")
    before = prepare.check_trimmed(root)  # the bulk is there: not trimmed yet
    assert before and all(p.startswith("still present") for p in before)
    summary = prepare.trim_tree(root)
    assert prepare.check_trimmed(root) == []
    llama = root / prepare.LLAMA
    assert (llama / "ggml/src/ggml-cuda/template-instances/mmq-instance-q8_0.cu").is_file()
    assert (llama / "ggml/src/ggml.c").is_file() and (llama / "tools/mtmd/clip.cpp").is_file()
    for gone in ("models", "docs", "media", "tests", "examples", "gguf-py",
                 "convert_hf_to_gguf.py", "tools/server", "tools/ui", "ggml/src/ggml-hip"):
        assert not (llama / gone).exists(), gone
    assert not (root / ".git").exists()
    assert summary["removed_bytes"] >= 17 * 1000  # the bulk files, at least
    assert f"{prepare.LLAMA}/models" in summary["removed"]


def test_check_trimmed_names_a_missing_cmake_file(tmp_path):
    root = fake_sdist(tmp_path / "sdist")
    prepare.trim_tree(root)
    (root / prepare.LLAMA / "ggml/src/ggml-cuda/CMakeLists.txt").unlink()
    missing = f"missing {prepare.LLAMA}/ggml/src/ggml-cuda/CMakeLists.txt"
    assert prepare.check_trimmed(root) == [missing]


def test_trimmed_archive_round_trips(tmp_path):
    import tarfile

    src = fake_sdist(tmp_path / "x" / prepare.SRC_DIR)
    sdist = tmp_path / "in.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        tar.add(src, arcname=prepare.SRC_DIR)
    out = tmp_path / "out.tar.gz"
    summary = prepare.make_trimmed_archive(sdist, out)
    assert summary["unpacked_bytes_after"] < summary["unpacked_bytes_before"]
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert f"{prepare.SRC_DIR}/{prepare.LLAMA}/ggml/src/ggml-cuda/ggml-cuda.cu" in names
    assert not any("ggml-vocab" in n or "/.git/" in n for n in names)


def test_report_is_rewritten_after_each_step_and_summarized(tmp_path):
    report = check.Report(tmp_path / "r.json", {"mode": "cpu"})
    report.record("probe", "ok", 1.234, tools={"nvcc": None})
    on_disk = json.loads((tmp_path / "r.json").read_text())
    assert on_disk["steps"] == [{"step": "probe", "status": "ok", "seconds": 1.23,
                                 "tools": {"nvcc": None}}]
    report.record("build", "timeout", 420.0)
    report.record("logits", "skipped", 0, reason="needs the CUDA build")
    data = report.finish()
    assert data["summary"] == {"ok": 1, "failed": 0, "timeout": 1, "error": 0, "skipped": 1}
    assert report.ok("probe") and not report.ok("build") and not report.ok("nope")
    assert json.loads((tmp_path / "r.json").read_text())["finished"] is not None
    with pytest.raises(ValueError):
        report.record("x", "fine", 0)


def test_run_boxed_kills_the_whole_process_group_on_timeout(tmp_path):
    log = tmp_path / "log.txt"
    # the child starts a grandchild that would outlive a plain kill of the child
    rc, seconds = check.run_boxed(["bash", "-c", "sleep 30 & sleep 30"], 1, log)
    assert rc is None and seconds < 10
    rc, _ = check.run_boxed(["bash", "-c", "echo hello; exit 3"], 10, log)
    assert rc == 3 and "hello" in log.read_text()


def test_budget_skips_steps_that_no_longer_fit(tmp_path):
    args = check.parse_args(["--cpu", "--steps", "probe,logits", "--budget", "10",
                             "--out", str(tmp_path)])
    c = check.Check(args)
    assert c.box("logits") is None  # 10 s budget - 5 s reserve < 15 s minimum
    args = check.parse_args(["--cpu", "--budget", "300", "--out", str(tmp_path)])
    c = check.Check(args)
    assert c.box("logits") == check.BOXES["logits"]
    assert 280 <= c.box("build") <= 295 < check.BOXES["build"]  # shrunk to the budget left
    with pytest.raises(SystemExit):
        check.parse_args(["--steps", "probe,flash"])


def test_parse_offload_reads_llama_cpp_load_log():
    lines = ["load_tensors: offloading output layer to GPU",
             "load_tensors: offloading 2 repeating layers to GPU",
             "load_tensors: offloaded 3/3 layers to GPU",
             "load_tensors:        CUDA0 model buffer size =    12.28 MiB"]
    assert steps.parse_offload(lines) == (3, 3)
    assert steps.parse_offload(["load_tensors:   CPU_Mapped model buffer size = 12.28 MiB"]) is None
    assert steps.buffer_lines(lines) == [lines[-1]]
    assert steps.offload_problem((3, 3), True) is None
    assert "only 2 of 3" in steps.offload_problem((2, 3), True)
    assert "CPU-only" in steps.offload_problem(None, False)


def test_compare_logits_counts_top1_and_max_abs_diff():
    np = pytest.importorskip("numpy")
    ref_last = np.array([0.0, 5.0, 1.0], dtype=np.float32)
    got_last = np.array([0.001, 4.998, 1.0], dtype=np.float32)
    c = steps.compare_logits([1, 2, 1], ref_last, [1, 0, 1], got_last)
    assert c["positions"] == 3 and c["top1_agreed"] == 2
    assert c["max_abs_diff"] == pytest.approx(0.002, abs=1e-5)
    assert c["logit_range"] == pytest.approx(5.0)
    total = steps.summarize([c, steps.compare_logits([1], ref_last, [1], ref_last)])
    assert total == {"positions": 4, "top1_agreed": 3, "agreement": 0.75,
                     "max_abs_diff": pytest.approx(0.002, abs=1e-5)}
    with pytest.raises(ValueError, match="positions differ"):
        steps.compare_logits([1, 2], ref_last, [1], got_last)


def test_reply_shape_problem_checks_the_schema_shape_only():
    assert steps.reply_shape_problem('{"act": "offer", "price": 250, "utterance": "Deal?"}') is None
    # the grammar allows such a number; parse_reply refuses it later (not a shape problem)
    assert steps.reply_shape_problem('{"act": "offer", "price": 7e1111, "utterance": "x"}') is None
    assert "not JSON" in steps.reply_shape_problem('{"act": "offer", "price": 25')
    assert "act" in steps.reply_shape_problem('{"act": "haggle", "price": 1, "utterance": "x"}')
    assert "keys" in steps.reply_shape_problem('{"act": "offer", "utterance": "x"}')


def test_losses_fall():
    assert steps.losses_fall([{"loss": 3.0}, {"loss": 2.0}])
    assert not steps.losses_fall([{"loss": 2.0}, {"loss": 2.5}])
    assert not steps.losses_fall([{"loss": 2.0}])


def test_pick_device_chooses_bf16_only_where_the_gpu_computes_it(monkeypatch):
    torch = pytest.importorskip("torch")
    from training.modeling import pick_device

    assert pick_device("cpu") == (torch.device("cpu"), torch.float32)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda dev=None: (9, 0))  # H100/H200
    assert pick_device(None) == (torch.device("cuda"), torch.bfloat16)
    assert pick_device("cuda:0") == (torch.device("cuda:0"), torch.bfloat16)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda dev=None: (7, 0))  # V100
    assert pick_device("cuda") == (torch.device("cuda"), torch.float32)


def test_pick_device_refuses_cuda_without_a_gpu(monkeypatch):
    torch = pytest.importorskip("torch")
    from bot.errors import ConfigError
    from training.modeling import pick_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        pick_device("cuda")


def test_find_cuda_libs_takes_cublas_from_pytorchs_wheel_when_the_toolkit_lacks_it(tmp_path):
    site = tmp_path / "site-packages"
    for major in ("cu13", "cu12"):
        _touch(site, f"nvidia/{major}/include/cublas_v2.h")
        _touch(site, f"nvidia/{major}/lib/libcublas.so.{major[2:]}")
        _touch(site, f"nvidia/{major}/lib/libcublasLt.so.{major[2:]}")
    nvcc = tmp_path / "cuda" / "bin" / "nvcc"  # a toolkit with no cuBLAS, no libcuda
    _touch(tmp_path, "cuda/bin/nvcc")
    _touch(tmp_path, "cuda/lib64/libcudart.so.13")
    found = check.find_cuda_libs([str(site)], str(nvcc), 13, system_roots=())
    lib = site / "nvidia/cu13/lib"
    assert f"-DCUDA_cublas_LIBRARY={lib / 'libcublas.so.13'}" in found["cmake_args"]
    assert f"-DCUDA_cublasLt_LIBRARY={lib / 'libcublasLt.so.13'}" in found["cmake_args"]
    assert f"-DCMAKE_CUDA_FLAGS=-I{site / 'nvidia/cu13/include'}" in found["cmake_args"]
    assert str(lib) in found["ld_library_path"]
    if found["found"]["cuda_driver"] is None:  # this machine has no driver library either
        assert "-DGGML_CUDA_NO_VMM=ON" in found["cmake_args"]
    assert check.cuda_major("Build cuda_13.0.r13.0/compiler.36424714_0") == 13
    assert check.cuda_major("Cuda compilation tools, release 12.4, V12.4.131") == 12
    assert check.cuda_major(None) is None


def test_gpu_mode_without_a_build_skips_the_llama_steps_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(check, "WORK", tmp_path / "work")
    args = check.parse_args(["--steps", "logits,negotiation", "--out", str(tmp_path / "out")])
    data = check.Check(args).run(args.step_list)
    assert [(s["step"], s["status"]) for s in data["steps"]] == [("logits", "skipped"),
                                                                 ("negotiation", "skipped")]
    assert "CUDA build" in data["steps"][0]["reason"]
    assert json.loads((tmp_path / "out" / "gpu_report.json").read_text())["mode"] == "gpu"
