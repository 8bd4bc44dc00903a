# `make demo` and `make test` do all the setup themselves on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TINY_MODEL := models/ltx2-tiny-distilled
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test docs clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

$(TINY_MODEL)/model_index.json: | setup
	$(BIN)/python -m ltx2gen.testing.synthetic --preset tiny --out $(TINY_MODEL)

demo: setup $(TINY_MODEL)/model_index.json
	$(BIN)/python generate.py --model $(TINY_MODEL) --width 256 --height 160 --num-frames 49 --seed 42 \
		--prompt "A lighthouse on a cliff at dusk, waves crashing below, gulls calling" \
		--output outputs/demo.mp4

test: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -n 2

# docs/FLAGS.md from the argument parser; `make test` fails while it is stale.
docs: setup
	$(BIN)/python -m ltx2gen.flag_reference > docs/FLAGS.md.tmp
	mv docs/FLAGS.md.tmp docs/FLAGS.md

clean:
	rm -rf $(VENV) $(TINY_MODEL) outputs/demo_*
