# v2gstack developer entry points. `make test` and `make demo` do all setup themselves.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
SHARED ?= ../shared
SCHEMAS := $(SHARED)/schemas/iso15118

.PHONY: venv test demo lint exi-codegen ocpp-validators bench fuzz ref-venv slac-venv ev2gym-venv browser scenarios clean

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[all,test]'
	@touch $@

venv: $(VENV)/.installed

# ruff, then the layer rules of ARCHITECTURE.md (the import-linter contracts in pyproject.toml).
lint: venv
	$(VENV)/bin/ruff check src tests tools bench
	$(VENV)/bin/lint-imports

# The reference stack (for the tests that compare with it) is installed when possible; without Java those tests skip.
test: venv lint
	-@bash tools/refcodec/setup.sh
	-@$(MAKE) --no-print-directory slac-venv
	-@$(MAKE) --no-print-directory browser
	PY=$(PY) bash tools/test_suite.sh

# The end-to-end demo: CSMS (SQLite) + station with five bridged EVSEs + five EVs (DIN, -2, -2 PnC, -20 DC_BPT).
demo: venv
	$(PY) -m v2gstack demo

exi-codegen: venv
	$(PY) tools/exi_codegen.py --schemas $(SCHEMAS) --out src/v2gstack/exi/generated

# The OCPP validators, generated ahead of time from the vendored schemas (`--check`: are they current?)
ocpp-validators: venv
	$(PY) tools/ocpp_validators.py

bench: venv ref-venv
	$(PY) bench/exi_bench.py

fuzz: venv
	$(PY) tools/exi_fuzz.py --count 1000000
	$(PY) tools/secc20_fuzz.py --count 20000
	$(PY) tools/slac_fuzz.py --count 1000000

ref-venv:
	bash tools/refcodec/setup.sh

# pyslac (EVSE-side SLAC) and scapy for the SLAC interop tests, in their own virtualenv: never imported by v2gstack.
# environs (a pyslac dependency) breaks with marshmallow 4, hence the pin.
SLAC_VENV := .venv-slac
$(SLAC_VENV)/.installed:
	@test -x $(SLAC_VENV)/bin/python || $(PYTHON) -m venv $(SLAC_VENV) || python3 -m venv $(SLAC_VENV)
	$(SLAC_VENV)/bin/python -m pip install -q 'pyslac==0.8.3' 'scapy>=2.5' 'marshmallow<4'
	@touch $@

slac-venv: $(SLAC_VENV)/.installed

# EV2Gym (and the size-limited gurobipy for its MPC) for bench/ev2gym_compare.py, in their own virtualenv: never a
# dependency of v2gstack. v2gstack goes in without its dependencies (the bench imports only the grid scheduler:
# numpy, scipy, highspy), non-editable: re-made when the scheduler changes. ev2gym 2.0.0 imports packages it does
# not declare (pandapower, numba, psutil, multicopula, pkg_resources) and its MPC needs numpy<2 and pandas<3.
EV2GYM_VENV := .venv-ev2gym
$(EV2GYM_VENV)/.installed: pyproject.toml src/v2gstack/grid/scheduler.py
	@test -x $(EV2GYM_VENV)/bin/python || $(PYTHON) -m venv $(EV2GYM_VENV) || python3 -m venv $(EV2GYM_VENV)
	$(EV2GYM_VENV)/bin/python -m pip install -q 'ev2gym==2.0.0' gurobipy 'numpy<2' 'pandas<3' 'scipy>=1.11' \
		pandapower numba psutil multicopula 'setuptools<81' 'highspy>=1.7'
	$(EV2GYM_VENV)/bin/python -m pip install -q --no-deps --force-reinstall .
	@touch $@

ev2gym-venv: $(EV2GYM_VENV)/.installed

# Every shipped scenario (scenarios/*.yaml); reports in v2gstack-scenarios/<name>/report.html. Fails if one fails.
scenarios: venv
	@status=0; for f in scenarios/*.yaml; do $(PY) -m v2gstack sim run $$f || status=1; done; exit $$status

# Debian's chromium and chromium-driver for the dashboard's browser tests (Selenium drives them; nothing is downloaded
# at run time). Installed with apt when missing and we are root (CI); otherwise those tests skip and say why.
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		DEBIAN_FRONTEND=noninteractive apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium chromium-driver; \
	else echo "make browser: chromium/chromium-driver missing (needs root and apt); the dashboard browser tests skip"; \
		exit 1; fi

clean:
	rm -rf $(VENV) .venv-ref .venv-slac .venv-ev2gym build dist .pytest_cache .ruff_cache
