"""The environment the local stack's processes get (pure): an allow-list, not the deployer's whole environment.

``pulumi up`` runs with secrets in its environment -- ``PULUMI_CONFIG_PASSPHRASE``,
``ARM_CLIENT_SECRET``, ``REGISTRY_PASSWORD``, cloud keys -- and the workers run
bundle code. So the registry, scheduler and workers get only what they need:

* every process: ``PATH``, ``HOME``, ``USER``, ``LOGNAME``, ``TMPDIR``, ``TZ`` and
  the locale (``LANG``, ``LANGUAGE``, ``LC_*``);
* the Python processes (scheduler, workers) also: ``MODELOPS_*`` settings,
  ``DASK_*`` configuration, ``PYTHONPATH`` so that they import the same
  ``modelops_infra`` as the process that deploys them, and what uv and pip need
  to build bundle environments from this machine's index: ``UV_*``, the
  ``PIP_*`` index and certificate settings, the CA bundle and proxy settings.

The registry gets nothing else: distribution reads ``REGISTRY_*`` variables as
configuration overrides, so an inherited ``REGISTRY_PASSWORD`` would even reach
its config.

>>> sorted(service_env({"PATH": "/bin", "ARM_CLIENT_SECRET": "s", "DASK_X": "1"}, python=True))
['DASK_X', 'PATH']
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["BASE_NAMES", "PYTHON_NAMES", "PYTHON_PREFIXES", "service_env"]

BASE_NAMES = frozenset({"PATH", "HOME", "USER", "LOGNAME", "TMPDIR", "TZ", "LANG", "LANGUAGE"})
BASE_PREFIXES = ("LC_",)
PYTHON_NAMES = frozenset({"PYTHONPATH", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "PIP_INDEX_URL",
                          "PIP_EXTRA_INDEX_URL", "PIP_CERT", "PIP_TRUSTED_HOST", "HTTP_PROXY", "HTTPS_PROXY",
                          "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"})
PYTHON_PREFIXES = ("MODELOPS_", "DASK_", "UV_")


def service_env(environ: Mapping[str, str], *, python: bool, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-listed subset of ``environ`` for a local service, plus ``extra`` (which wins).

    ``python`` adds what the Dask scheduler and workers need (see the module docstring).
    """
    names = BASE_NAMES | PYTHON_NAMES if python else BASE_NAMES
    prefixes = BASE_PREFIXES + PYTHON_PREFIXES if python else BASE_PREFIXES
    env = {k: v for k, v in environ.items() if k in names or k.startswith(prefixes)}
    env.update(extra or {})
    return env
