# The Dask worker (and scheduler) image for the modelops workspaces, for people who build with Docker.
#
# The stack builds this image itself, without a daemon (`WorkerImage`, see docs/architecture.md); this
# file is the alternative, and tests/infra/image/test_dockerfile.py checks that both install the same packages
# on the same base. It holds the worker install only: `modelops-infra[azure]` (Dask, the bundle client,
# azure-identity), `uv` (bundle environments) and EXTRA_PACKAGES. No Pulumi.
#
# Build from the repository root, e.g.
#   docker build -f docker/worker.Dockerfile -t <acr_login_server>/modelops/dask-worker:0.1.0 .
#   docker build -f docker/worker.Dockerfile --build-arg BASE_IMAGE=mcr.microsoft.com/... .
# then set `modelops:workspace.image` to the pushed reference (by digest, preferably).
# The base must be Debian-like (groupadd/useradd) with `python3` and its `venv` module, of the clients'
# Python version: Dask pickles code between clients and workers.
# PIP_INDEX_URL / UV_DEFAULT_INDEX choose another package index (they live only in the build stage).

ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- build: the worker install in a venv, copied whole into the runtime -----
FROM ${BASE_IMAGE} AS build
ARG PIP_INDEX_URL
ARG UV_DEFAULT_INDEX
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 UV_NO_CACHE=1
# uv installs the worker venv, as the stack's WorkerImage does, so both hold the same packages and no pip.
RUN python3 -m venv /opt/tools && /opt/tools/bin/pip install --quiet uv && /opt/tools/bin/uv venv --quiet /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY modelops_infra ./modelops_infra
# bokeh renders the dashboard pages; /health (the probes) works without it.
ARG EXTRA_PACKAGES="bokeh>=3.1"
RUN /opt/tools/bin/uv pip install --quiet --python /opt/venv/bin/python \
        ".[azure]" uv ${EXTRA_PACKAGES} \
 && /opt/venv/bin/python -c "import modelops_infra, distributed, azure.identity" \
 && ! /opt/venv/bin/python -c "import pulumi" 2>/dev/null

# ---- runtime: same base image, so the venv's interpreter path stays valid ---
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/home/dask \
    MODELOPS_BUNDLE_CACHE_DIR=/var/cache/modelops/bundles
COPY --from=build /opt/venv /opt/venv
# UID/GID 1000 matches the pods' runAsUser/runAsGroup/fsGroup.
RUN groupadd --gid 1000 dask \
 && useradd --uid 1000 --gid 1000 --home-dir /home/dask --create-home --shell /usr/sbin/nologin dask \
 && mkdir -p /var/cache/modelops/bundles \
 && chown -R 1000:1000 /var/cache/modelops
USER 1000:1000
WORKDIR /home/dask
EXPOSE 8786 8787 8789
# The Deployments set the command (`dask scheduler` / `dask worker ... --preload modelops_infra.worker`).
CMD ["dask", "worker", "--help"]
