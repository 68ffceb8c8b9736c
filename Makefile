# modelops-infra: two commands on a fresh machine.
#   make up    install what is missing, then `pulumi up --stack local --yes`
#   make test  install what is missing, then run the whole test suite
SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT        := $(abspath .)
VENV        := $(ROOT)/.venv
PY          := $(VENV)/bin/python
PYTHON      ?= python3
STATE_DIR   := $(ROOT)/.modelops/state
LOCAL_STACK ?= local
PULUMI_DIR   = $(shell cat $(ROOT)/.modelops/pulumi-bin-dir 2>/dev/null)

# Offline engine settings: no update check, no plugin downloads, local file backend.
export PULUMI_SKIP_UPDATE_CHECK := true
export PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION := true
export PULUMI_BACKEND_URL ?= file://$(STATE_DIR)
# The local stack's documented passphrase is empty; set your own for real stacks.
export PULUMI_CONFIG_PASSPHRASE ?=
# The language host runs this interpreter (it ignores Pulumi.yaml's virtualenv option; docs/pulumi-engine.md).
export PULUMI_PYTHON_CMD := $(VENV)/bin/python

.PHONY: help setup venv registry pulumi interop-tools wheelhouse container-tools lint test up down bench clean kube-deps kube kube-up kube-down

help:
	@echo "make up    - deploy the local stack (registry + Dask + smoke test), no cloud account needed"
	@echo "make test  - set up everything and run the whole test suite"
	@echo "make down  - destroy the local stack"
	@echo "make bench - run the benchmarks (see docs/benchmarks.md)"
	@echo "make kube-up   - start a single-node Kubernetes in a network namespace (docs/kubernetes.md)"
	@echo "make kube-down - stop it and restore what it changed on the host"

# --- set-up ---------------------------------------------------------------------------

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

# System packages from Debian: the CNCF distribution registry, and iproute2 + nftables
# for the network-fault tests (namespaces, veth pairs, drop rules).
registry:
	@missing=""; \
	command -v docker-registry >/dev/null || command -v registry >/dev/null || missing="$$missing docker-registry"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v nft >/dev/null || missing="$$missing nftables"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
	@command -v docker-registry >/dev/null || command -v registry >/dev/null

pulumi:
	@mkdir -p $(ROOT)/.modelops/bin
	@dir=$$($(ROOT)/scripts/pulumi.sh) && echo "$$dir" > $(ROOT)/.modelops/pulumi-bin-dir \
	  && ln -sfn "$$dir/pulumi" $(ROOT)/.modelops/bin/pulumi \
	  && for f in pulumi-language-python pulumi-language-python-exec pulumi-resource-pulumi-python; do \
	       ln -sfn "$$dir/$$f" $(ROOT)/.modelops/bin/$$f; done

interop-tools:
	@$(ROOT)/scripts/interop-tools.sh

# Wheels from PyPI, kept outside the repository; the tests serve them as a package index on
# 127.0.0.1 (tests/services.py), so no test reaches a remote index. The venv's pip downloads.
wheelhouse: venv
	@mkdir -p $(ROOT)/.modelops
	@dir=$$(PYTHON=$(PY) $(ROOT)/scripts/wheelhouse.sh) && echo "$$dir" > $(ROOT)/.modelops/wheelhouse-dir

# Docker engine and mmdebstrap (Debian packages), and a bookworm + python3 root file system built once
# into the tools cache: the worker-image tests push it to their registry as the base image and run the
# image with their own dockerd (tests/infra/image/). No public container registry is needed.
container-tools:
	@mkdir -p $(ROOT)/.modelops
	@tar=$$($(ROOT)/scripts/container-tools.sh) && echo "$$tar" > $(ROOT)/.modelops/base-rootfs

setup: venv registry pulumi
	@mkdir -p $(STATE_DIR)

# --- the two commands -----------------------------------------------------------------

# Lint and types run first in make test, so a regression fails CI before the slow tests.
lint: venv
	$(VENV)/bin/ruff check modelops_infra tests benchmarks harness
	$(PY) -m mypy modelops_infra

# kube: the single-node cluster the tests in tests/kube deploy to (built once, ~20-30 min cold).
test: setup lint interop-tools wheelhouse container-tools kube
	PATH="$(ROOT)/.modelops/bin:$(VENV)/bin:$$PATH" $(PY) -m pytest $(PYTEST_ARGS)

up: setup
	@PATH="$(ROOT)/.modelops/bin:$(VENV)/bin:$$PATH" $(ROOT)/scripts/up.sh $(LOCAL_STACK)

down: setup
	@export PATH="$(ROOT)/.modelops/bin:$(VENV)/bin:$$PATH"; \
	if pulumi stack ls --json 2>/dev/null | grep -q '"name": "$(LOCAL_STACK)"'; then \
	  pulumi destroy --stack $(LOCAL_STACK) --yes --skip-preview && echo "local stack $(LOCAL_STACK) destroyed"; \
	else echo "no stack $(LOCAL_STACK) in $(PULUMI_BACKEND_URL): nothing to destroy"; fi

bench: setup wheelhouse container-tools kube
	PATH="$(ROOT)/.modelops/bin:$(VENV)/bin:$$PATH" $(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf .pytest_cache build *.egg-info

# --- a single-node Kubernetes (docs/kubernetes.md) --------------------------------------

# Debian's etcd, containerd, runc and CNI plugins; gcc for the static pause binary.
kube-deps: registry
	@missing=""; \
	command -v etcd >/dev/null || missing="$$missing etcd-server"; \
	command -v containerd >/dev/null || missing="$$missing containerd"; \
	command -v runc >/dev/null || missing="$$missing runc"; \
	test -x /usr/lib/cni/bridge || missing="$$missing containernetworking-plugins"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v gcc >/dev/null || missing="$$missing gcc libc6-dev"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v curl >/dev/null || missing="$$missing curl"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# The cluster binaries and pulumi-resource-kubernetes, built once into ~/.cache/modelops/kube/.
kube: kube-deps
	@mkdir -p $(ROOT)/.modelops/bin
	@dir=$$($(ROOT)/scripts/kube.sh) && echo "$$dir" > $(ROOT)/.modelops/kube-bin-dir \
	  && ln -sfn "$$dir/kubectl" $(ROOT)/.modelops/bin/kubectl \
	  && ln -sfn "$$dir/pulumi-resource-kubernetes" $(ROOT)/.modelops/bin/pulumi-resource-kubernetes

kube-up: kube
	@MODELOPS_KUBE_BIN=$$(cat $(ROOT)/.modelops/kube-bin-dir) $(ROOT)/scripts/kube-cluster.sh up

kube-down:
	@$(ROOT)/scripts/kube-cluster.sh down
