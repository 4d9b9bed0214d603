PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv test test-fast demo bench pipelines-lock clean

# The venv is rebuilt whenever pyproject.toml changes.
$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/.installed

# Three workers on two cores: most end-to-end tests wait on real-time simulator timings.
test: venv
	$(BIN)/python -m pytest -q -n 3 --dist loadfile

# The edit-test loop: everything but the tests marked slow (about a minute).
test-fast: venv
	$(BIN)/python -m pytest -q -n 3 --dist loadfile -m 'not slow'

demo: venv
	$(BIN)/cycle-vmss demo

bench: venv
	$(BIN)/python -m bench

# The Azure Pipelines template's lock: every dependency, for Linux and Windows, with hashes.
pipelines-lock: venv
	$(BIN)/pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --universal --generate-hashes --python-version 3.11 \
		--no-header --no-annotate --quiet --output-file .cache/pipelines-lock.txt
	$(BIN)/python scripts/release.py lock .cache/pipelines-lock.txt

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis bench-results.json
