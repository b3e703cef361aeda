# seaice: `make demo` and `make test` each build/refresh .venv (a fast no-op when up to date).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.seaice-installed

.PHONY: venv horovod browser compose-cli demo test lint imports typecheck unit clean-venv

venv: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24" setuptools wheel
	$(BIN)/python -m pip install --quiet -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# Horovod (PyTorch + Gloo) built from the PyPI sdist with C++17; the wheel is cached outside the
# repository (~/.cache/seaice-wheels), so only the first build on a machine takes minutes.
HOROVOD_STAMP := $(VENV)/.seaice-horovod

horovod: $(HOROVOD_STAMP)

$(HOROVOD_STAMP): $(STAMP) tools/build_horovod.sh
	tools/build_horovod.sh $(VENV)
	@touch $(HOROVOD_STAMP)

# Debian's Chromium for the Airflow UI test (Playwright drives it through executable_path).
browser:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq chromium chromium-driver >/dev/null)

# A validator of docker-compose.yaml (no container engine needed): the `docker compose` plugin when it
# is there, else Debian's docker-compose 1.29 (`docker-compose config`, tests/unit/test_compose.py).
compose-cli:
	@docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-compose >/dev/null)

demo: venv
	$(BIN)/seaice demo

lint: venv
	$(BIN)/ruff check seaice_tasks dags plugins tests benchmarks experiments

imports: venv
	$(BIN)/lint-imports

typecheck: venv
	$(BIN)/mypy

test: venv horovod browser compose-cli lint imports typecheck
	$(BIN)/pytest -q

clean-venv:
	rm -rf $(VENV)
