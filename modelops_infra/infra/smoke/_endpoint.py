"""Reach the Dask scheduler for the smoke test: directly, or through a Kubernetes port-forward.

On AKS the scheduler has only a ClusterIP Service; nothing is exposed publicly.
The smoke test therefore opens a local listener on ``127.0.0.1:<random>`` and
forwards each connection through the Kubernetes API's pod ``portforward``
subresource to a running scheduler pod selected by the Service's selector.
Everything is torn down when the context exits.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from modelops_infra.errors import SmokeTestError

__all__ = ["pick_pod", "scheduler_endpoint"]

log = logging.getLogger(__name__)


def pick_pod(selector: Mapping[str, str], pods: list[Any]) -> str:
    """Name of a Running, Ready pod whose labels match ``selector`` (pure; pods are k8s V1Pod objects)."""
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        labels = pod.metadata.labels or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            continue
        if pod.status.phase != "Running":
            continue
        conditions = {c.type: c.status for c in (pod.status.conditions or [])}
        if conditions.get("Ready") == "True":
            return str(pod.metadata.name)
    raise SmokeTestError(f"no Running, Ready pod matches the scheduler Service selector {dict(selector)}",
                         stage="connect")


def _pump(src: Any, dst: Any, stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        stop.set()
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


def _kube_client(kubeconfig: str) -> Any:
    """An API client from kubeconfig text; errors say what is wrong, never what the kubeconfig holds.

    YAML and kube-config errors quote the offending text (tokens, certificates),
    and Pulumi prints a provider error's whole traceback, so the library's
    exception is not chained here (``from None``): only its type and position are kept.
    """
    import yaml
    from kubernetes import config as k8s_config

    try:
        data = yaml.safe_load(kubeconfig)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SmokeTestError(f"the kubeconfig is not valid YAML{where} ({type(exc).__name__}; its content"
                             " is secret and not shown)", stage="connect") from None
    if not isinstance(data, dict):
        raise SmokeTestError(f"the kubeconfig is a YAML {type(data).__name__}, not a mapping",
                             stage="connect")
    try:
        return k8s_config.new_client_from_config_dict(data)
    except Exception:  # kubernetes raises ConfigException, KeyError, ValueError, ... quoting the config
        raise SmokeTestError("the kubeconfig cannot be loaded (missing or malformed context, cluster or"
                             " user; its content is secret and not shown)", stage="connect") from None


@contextlib.contextmanager
def _port_forward(kubeconfig: str, namespace: str, service: str, port: int, timeout: float) -> Iterator[str]:
    from kubernetes import client as k8s
    from kubernetes.stream import portforward

    api_client = _kube_client(kubeconfig)
    try:
        core = k8s.CoreV1Api(api_client)
        svc = core.read_namespaced_service(service, namespace, _request_timeout=timeout)
        pods = core.list_namespaced_pod(namespace, _request_timeout=timeout).items
    except Exception as exc:  # translated at the seam: kubernetes ApiException, urllib3 errors
        raise SmokeTestError(f"cannot read Service {namespace}/{service} through the Kubernetes API "
                             f"({type(exc).__name__}: {exc})", stage="connect") from exc
    pod = pick_pod((svc.spec.selector if svc.spec else None) or {}, pods)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.5)
    closing = threading.Event()

    def serve() -> None:
        while not closing.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                pf = portforward(core.connect_get_namespaced_pod_portforward, pod, namespace, ports=str(port))
                remote = pf.socket(port)
            except Exception as exc:  # one failed forward closes that connection only
                log.warning("port-forward to %s/%s:%d failed: %s", namespace, pod, port, exc)
                conn.close()
                continue
            stop = threading.Event()
            threading.Thread(target=_pump, args=(conn, remote, stop), daemon=True).start()
            threading.Thread(target=_pump, args=(remote, conn, stop), daemon=True).start()

    thread = threading.Thread(target=serve, name="modelops-port-forward", daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        closing.set()
        listener.close()
        thread.join(timeout=2)
        api_client.close()


@contextlib.contextmanager
def scheduler_endpoint(props: Mapping[str, Any], *, timeout: float) -> Iterator[str]:
    """Yield a scheduler address the local process can connect to."""
    address = props.get("scheduler_address")
    if address:
        yield str(address)
        return
    with _port_forward(str(props["kubeconfig"]), str(props["namespace"]), str(props["scheduler_service"]),
                       int(props.get("scheduler_port") or 8786), timeout) as forwarded:
        yield forwarded
