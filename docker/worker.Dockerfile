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

# ---- build: the worker install in a venv, copied whole into the runtime -----
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY modelops_infra ./modelops_infra
# bokeh renders the dashboard pages; /health (the probes) works without it.
ARG EXTRA_PACKAGES="bokeh>=3.1"
RUN /opt/venv/bin/pip install ".[azure]" ${EXTRA_PACKAGES} \
 && /opt/venv/bin/python -c "import modelops_infra, distributed, azure.identity" \
 && ! /opt/venv/bin/python -c "import pulumi" 2>/dev/null

# ---- runtime: same base image, so the venv's interpreter path stays valid ---
FROM python:${PYTHON_VERSION}-slim-bookworm
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
