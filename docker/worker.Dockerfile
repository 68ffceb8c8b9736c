# syntax=docker/dockerfile:1
#
# The Dask worker (and scheduler) image for the modelops AKS workspace:
#   <acr_login_server>/modelops/dask-worker:<tag>
#
# It holds the worker install only, `modelops-infra[azure]` (Dask, the bundle
# client, azure-identity for workload-identity pulls from ACR). No Pulumi.
# Build from the repository root, e.g.
#   az acr build -r <registry_name> -t modelops/dask-worker:0.1.0 -f docker/worker.Dockerfile .
#   docker build -f docker/worker.Dockerfile -t <acr_login_server>/modelops/dask-worker:0.1.0 .
# Keep PYTHON_VERSION equal to the clients' Python: Dask pickles code between them.

ARG PYTHON_VERSION=3.11

# ---- build: wheels for the project and every dependency ----------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY modelops_infra ./modelops_infra
# bokeh renders the dashboard pages; /health (the probes) works without it.
ARG EXTRA_PACKAGES="bokeh>=3.1"
RUN pip wheel --wheel-dir /wheels ".[azure]" ${EXTRA_PACKAGES}

# ---- runtime -----------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    HOME=/home/dask \
    MODELOPS_BUNDLE_CACHE_DIR=/var/cache/modelops/bundles
ARG EXTRA_PACKAGES="bokeh>=3.1"
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels "modelops-infra[azure]" ${EXTRA_PACKAGES} \
 && python -c "import modelops_infra, distributed, azure.identity" \
 && ! python -c "import pulumi" 2>/dev/null
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
