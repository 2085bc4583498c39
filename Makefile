# The RNN model zoo. `make train-sentiment` sets everything up on first use.
#   BACKEND      Keras backend for training and evaluation: jax (default), tensorflow, torch.
#                Export always uses tensorflow (it writes a TensorFlow SavedModel).
#   DATA_MIRROR  folder with the upstream dataset archives (ZOO_DATA_MIRROR); default
#                ../shared/data when it exists, else datasets download from upstream.
#   SET          config overrides for train/eval, e.g. SET="cell=lstm units=128";
#                SET="quantize=int8" keeps int8 weights if the test metric holds.
#   SHIP=1       make train-X ships the run (saved_models/X) if its test metric is not worse.
PYTHON ?= python3
VENV ?= .venv
BACKEND ?= jax
DATA_MIRROR ?= $(or $(ZOO_DATA_MIRROR),$(wildcard ../shared/data))
SET ?=

PY := $(VENV)/bin/python
ZOO := ZOO_DATA_MIRROR=$(DATA_MIRROR) TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m zoo
SETS := $(foreach pair,$(SET),--set $(pair))

.PHONY: setup test test-all bench list lint clean gradient-norms report-nmt report-lm report-captioning

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -e '.[dev,jax]'
	touch $@

list: setup
	@$(ZOO) list

# The language model and the slot filler train on TensorFlow without a GPU: on the 2-core CPU
# JAX's LSTM ran about 5 times slower for the language model (saved_models/lm/card.md) and the
# slot filler's steps took 6 s instead of 0.09 s; with a GPU, JAX's cuDNN path.
train-lm eval-lm quantize-lm train-slots eval-slots quantize-slots: BACKEND = $(if $(shell nvidia-smi -L 2>/dev/null),jax,tensorflow)

# Trains into runs/<entry>/<timestamp>-<config hash>/; SHIP=1 then replaces the shipped model.
train-%: setup
	KERAS_BACKEND=$(BACKEND) $(ZOO) train $* $(SETS) $(if $(SHIP),--ship)

# Replaces saved_models/<entry>/ by the newest evaluated run (RUN=<folder> for another), as
# one set, unless its test metric is worse (FORCE=1 ships it anyway).
ship-%: setup
	$(ZOO) ship $* $(if $(RUN),--run $(RUN)) $(if $(FORCE),--force)

eval-%: setup
	KERAS_BACKEND=$(BACKEND) $(ZOO) eval $* $(SETS)

# int8-quantizes saved_models/<entry>/model.keras in place if the test metric holds (0.2 points).
quantize-%: setup
	KERAS_BACKEND=$(BACKEND) $(ZOO) quantize $*

# A translator's decoding (beam width, length penalty) chosen on validation and saved on the
# model, with the card's measurements: BLEU vs beam width, speed, attention heatmaps.
report-nmt: setup
	KERAS_BACKEND=$(BACKEND) ZOO_DATA_MIRROR=$(DATA_MIRROR) TF_CPP_MIN_LOG_LEVEL=2 \
		$(PY) -m zoo.models.translator.report --choose

# A captioner's decoding (beam width, length penalty) chosen on validation and saved on the
# model, with the card's measurements: BLEU/CIDEr vs beam width, speed, attention over images.
report-captioning: setup
	KERAS_BACKEND=tensorflow ZOO_DATA_MIRROR=$(DATA_MIRROR) TF_CPP_MIN_LOG_LEVEL=2 \
		$(PY) -m zoo.models.image_captioner.report --choose

# The language model's card samples: next words and seeded continuations of every sampler.
report-lm: setup
	KERAS_BACKEND=tensorflow ZOO_DATA_MIRROR=$(DATA_MIRROR) TF_CPP_MIN_LOG_LEVEL=2 \
		$(PY) -m zoo.models.language_model.report

export-%: setup
	KERAS_BACKEND=tensorflow $(ZOO) export $*

predict-%: setup
	KERAS_BACKEND=$(BACKEND) $(ZOO) predict $*

# Fast unit tests plus the real-data and pretrained-model tests (skipped without a mirror),
# on two workers (pytest-xdist), each test file on one of them (its fixtures built once), the
# contract suite split by entry (tests/conftest.py).
TEST_WORKERS ?= 2
test: setup
	ZOO_DATA_MIRROR=$(DATA_MIRROR) KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=2 \
		$(PY) -m pytest -ra --durations=20 -n $(TEST_WORKERS) --dist loadgroup

bench: setup
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q '.[bench]'
	ZOO_DATA_MIRROR=$(DATA_MIRROR) KERAS_BACKEND=$(BACKEND) TF_CPP_MIN_LOG_LEVEL=2 \
		$(PY) -m bench $(BENCH_ARGS)

# ||dL/dh_0|| against sequence length for Elman, LSTM and GRU: the vanishing-gradient plot.
gradient-norms: setup
	KERAS_BACKEND=tensorflow TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m zoo.gradient_norms \
		--output docs/gradient_norms.png

lint: setup
	$(PY) -m ruff check zoo pipelines tests bench

clean:
	rm -rf runs .pytest_cache
