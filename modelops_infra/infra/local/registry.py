"""``LocalRegistry``: the CNCF distribution registry on 127.0.0.1, as a Pulumi component.

The registry process gets an allow-listed environment (:func:`service_env`), not
the environment of ``pulumi up`` with its secrets.

Its ``login_server`` output (``127.0.0.1:<port>``) plays the part of the Azure
registry's login server: the local workspace's workers get it as
``MODELOPS_BUNDLE_REGISTRY``, and the stack exports it as ``acr_login_server``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, Resource

from modelops_infra.infra.local._environment import service_env
from modelops_infra.infra.local._processes import port_in_use, spawn_detached, tail, wait_until
from modelops_infra.infra.local._provider import ServiceProvider

__all__ = ["LocalRegistry", "LocalRegistryArgs", "registry_config_yaml"]

REGISTRY_BINARIES = ("docker-registry", "registry")


def registry_config_yaml(port: int, storage: Path, *, htpasswd: Path | None = None, host: str = "127.0.0.1") -> str:
    """Distribution registry configuration (pure): filesystem storage, listening on ``host``
    (loopback unless told), deletes on, access log on; basic auth from an htpasswd file when given."""
    auth = f"auth:\n  htpasswd:\n    realm: modelops\n    path: {htpasswd}\n" if htpasswd is not None else ""
    return (
        "version: 0.1\n"
        "log:\n  level: info\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: {host}:{port}\n{auth}"
    )


class RegistryProcessProvider(ServiceProvider):
    inputs = ("port", "data_dir", "log_dir")
    kind = "registry"

    def validate(self, props: dict[str, Any]) -> list[CheckFailure]:
        port = props.get("port")
        if not isinstance(port, (int, float)) or not 1 <= int(port) <= 65535:
            return [CheckFailure("port", f"modelops:local.registryPort must be a TCP port, got {port!r}")]
        return []

    def start(self, props: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        import requests

        port = int(props["port"])
        binary = next((found for name in REGISTRY_BINARIES if (found := shutil.which(name))), None)
        if binary is None:
            raise RuntimeError("registry: no docker-registry binary on PATH; run `make up`, which installs it")
        if port_in_use(port):
            raise RuntimeError(f"registry: port {port} on 127.0.0.1 is already in use (modelops:local.registryPort)")
        data, logs = Path(props["data_dir"]), Path(props["log_dir"])
        data.mkdir(parents=True, exist_ok=True)
        config = data / "config.yml"
        config.write_text(registry_config_yaml(port, data / "storage"))
        log = logs / "registry.log"
        handle = spawn_detached([binary, "serve", str(config)], log=log, env=service_env(os.environ, python=False))
        url = f"http://127.0.0.1:{port}/v2/"
        if not wait_until(lambda: requests.get(url, timeout=1).status_code == 200, timeout=30, alive=handle):
            handle.stop()
            raise RuntimeError(f"registry: not answering {url} within 30 s; last log lines:\n{tail(log)}")
        return [handle], {"login_server": f"127.0.0.1:{port}", "log": str(log)}


class LocalRegistryProcess(Resource, module="modelops", name="LocalRegistryProcess"):
    login_server: pulumi.Output[str]
    processes: pulumi.Output[list[dict[str, int]]]

    def __init__(self, name: str, *, port: pulumi.Input[int], data_dir: str, log_dir: str,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(RegistryProcessProvider(), name,
                         {"port": port, "data_dir": data_dir, "log_dir": log_dir, "login_server": None,
                          "processes": None, "log": None}, opts)


@dataclass
class LocalRegistryArgs:
    port: int
    #: Registry data (config and blobs) go under ``<data_dir>``; removed by ``pulumi destroy``.
    data_dir: str
    log_dir: str


class LocalRegistry(pulumi.ComponentResource):
    """A running distribution registry. Outputs ``login_server`` (``127.0.0.1:<port>``)."""

    login_server: pulumi.Output[str]

    def __init__(self, name: str, args: LocalRegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("modelops:local:LocalRegistry", name, None, opts)
        process = LocalRegistryProcess(f"{name}-process", port=args.port, data_dir=args.data_dir,
                                       log_dir=args.log_dir, opts=pulumi.ResourceOptions(parent=self))
        self.login_server = process.login_server
        self.register_outputs({"login_server": self.login_server})
