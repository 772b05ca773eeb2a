# The two commands of the README. Each bootstraps the environment first (idempotent).
.PHONY: demo test lint bootstrap lock

VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_DISABLE_TELEMETRY := 1

bootstrap:
	@bash scripts/bootstrap.sh

## make demo: the paper's benchmark on the built-in synthetic corpus with offline backbones.
demo: bootstrap
	$(BIN)/hf-bio demo

## make test: ruff, then the whole pytest suite (slow end-to-end tests included).
test: lint
	@bash scripts/bootstrap.sh --test
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(BIN)/python -m pytest

lint: bootstrap
	$(BIN)/ruff check .

## make lock: re-resolve requirements.lock from the current .venv (maintainers only).
lock:
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^hf-bio' > requirements.lock
