"""Run a Deployment's pod as a Docker container: the constraints come from the same spec code the DaskWorkspace uses.

:func:`docker_run_argv` reads a Deployment spec from
:mod:`modelops_infra.infra.kubernetes.specs` and translates what the kubelet
would enforce into ``docker run`` flags:

=========================================  =====================================================
pod spec                                   docker run
=========================================  =====================================================
``run_as_user`` / ``run_as_group``          ``--user 1000:1000``
``fs_group``                                ``--group-add 1000`` and the tmpfs' gid
``read_only_root_filesystem``               ``--read-only``
``capabilities.drop: [ALL]``                ``--cap-drop ALL``
``allow_privilege_escalation: false``       ``--security-opt no-new-privileges``
``seccomp_profile: RuntimeDefault``         Docker's default seccomp profile
an ``emptyDir`` volume mount                ``--tmpfs PATH:uid=…,gid=…,exec[,size=…]``
``env``, ``command``                        ``-e``, ``--entrypoint`` + arguments
=========================================  =====================================================

Networking is the host's (the only mode the test daemon has), so the fixed
ports of the spec are rewritten to free ones by exact argument replacement.
A Docker tmpfs is ``noexec`` unless told otherwise; an ``emptyDir`` is not,
hence ``exec``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from modelops_infra.infra.quantities import parse_memory

SCHEDULER_ROLE, WORKER_ROLE = "scheduler", "worker"


def _flags(pod: Mapping[str, Any], container: Mapping[str, Any], *, omit: Collection[str]) -> list[str]:
    sc = container["security_context"]
    pod_sc = pod.get("security_context") or {}
    argv = ["--network", "host", "--user", f"{sc['run_as_user']}:{sc['run_as_group']}"]
    if pod_sc.get("fs_group") is not None:
        argv += ["--group-add", str(pod_sc["fs_group"])]
    if sc.get("read_only_root_filesystem"):
        argv.append("--read-only")
    for cap in sc.get("capabilities", {}).get("drop", []):
        argv += ["--cap-drop", cap]
    if sc.get("allow_privilege_escalation") is False:
        argv += ["--security-opt", "no-new-privileges"]
    assert sc.get("seccomp_profile", {}).get("type") in (None, "RuntimeDefault"), "only the default profile maps"
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    for mount in container.get("volume_mounts") or []:
        empty_dir = volumes[mount["name"]].get("empty_dir")
        if empty_dir is None or mount["mount_path"] in omit:
            continue
        options = [f"uid={sc['run_as_user']}", f"gid={pod_sc.get('fs_group', sc['run_as_group'])}", "exec"]
        if empty_dir.get("size_limit"):
            options.append(f"size={parse_memory(empty_dir['size_limit'], key='size_limit')}")
        argv += ["--tmpfs", f"{mount['mount_path']}:{','.join(options)}"]
    for item in container.get("env") or []:
        argv += ["-e", f"{item['name']}={item['value']}"]
    return argv


def docker_run_argv(deployment_spec: Mapping[str, Any], *, name: str, image: str, omit: Collection[str] = (),
                    rewrite: Mapping[str, str] | None = None) -> list[str]:
    """``docker run`` arguments for the first container of ``deployment_spec`` (detached, named ``name``).

    ``omit`` lists mount paths whose ``emptyDir`` is left out (to prove a test
    would notice). ``rewrite`` replaces whole command arguments (ports).
    """
    pod = deployment_spec["template"]["spec"]
    container = pod["containers"][0]
    command = [(rewrite or {}).get(arg, arg) for arg in [*container["command"], *(container.get("args") or [])]]
    return ["run", "-d", "--name", name, *_flags(pod, container, omit=omit),
            "--entrypoint", command[0], image, *command[1:]]
