"""Bundles that bring their own Python dependencies: built once per host with uv, run in warm child processes.

Everything is real: the CNCF registry, a PEP 503 package index on loopback
(serving the wheelhouse ``make test`` downloads), uv, Dask workers and child
processes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from distributed import Client

from harness.services import registry_binary, start_test_cluster, stop
from modelops_infra.bundles import (
    BuildOptions,
    BundleCache,
    BundleSettings,
    build_environment,
    find_environment,
    push_bundle,
)
from modelops_infra.client import DaskSimulationService, SimTask
from modelops_infra.errors import BundleRunError, IntegrityError, RequirementsError
from modelops_infra.worker import BundleRuntime, run_sim_task
from tests.netns import sh

VERSION_SIM = """
    import importlib.metadata, os, sys
    import {module}

    def run(params, seed):
        return {{"version": importlib.metadata.version({dist!r}), "file": {module}.__file__,
                 "python": sys.executable, "pid": os.getpid()}}
"""


@pytest.fixture(scope="module")
def env_cluster(tmp_path_factory, registry, package_index):
    """A cluster of this module's own: children that die or hang here never share a worker with other tests."""
    c = start_test_cluster(tmp_path_factory.mktemp("dask-env"), registry, package_index)
    yield c
    c.stop()


@pytest.fixture
def client(env_cluster):
    with Client(env_cluster.scheduler_address, timeout=30) as c:
        yield c


def version_bundle(make_bundle, name: str, dist: str, module: str, pin: str, **manifest_extra) -> Path:
    root = make_bundle(name, {"sim.py": VERSION_SIM.format(module=module, dist=dist)}, requirements=f"{pin}\n")
    if manifest_extra:
        manifest = json.loads((root / "manifest.json").read_text())
        manifest.update(manifest_extra)
        (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def runtime_for(registry, cache: Path, index_url: str, **settings) -> BundleRuntime:
    return BundleRuntime(BundleSettings(registry=registry.address, cache_dir=cache, **settings), threads=2,
                         build_options=BuildOptions(index_url=index_url))


def test_a_bundle_that_imports_numpy_runs_on_dask_workers(registry, client, make_bundle):
    root = make_bundle("numpy-model", {"model.py": """
        import numpy as np

        def run(params, seed):
            rng = np.random.default_rng(seed)
            draws = rng.normal(params["mu"], 1.0, size=1000)
            return {"mean": float(draws.mean()), "numpy": np.__version__}
    """}, entrypoint="model:run", requirements="numpy>=1.24\n")
    ref = str(push_bundle(root, registry.address).reference)
    svc = DaskSimulationService(client)
    results = svc.gather(svc.submit_batch([SimTask(ref, {"mu": 5.0}, seed=s) for s in range(6)]))
    assert len(results) == 6
    assert all(abs(r["mean"] - 5.0) < 0.3 for r in results), f"numpy draws around mu=5 expected, got {results}"
    assert results[0]["numpy"].split(".")[0] in {"1", "2"}
    assert len({r["mean"] for r in results}) == 6, "each seed must give its own draws"


def test_bundles_pinning_different_versions_each_see_their_own_even_over_the_workers(
        registry, client, make_bundle):
    import packaging

    worker_version = client.run(lambda: __import__("packaging").__version__)
    a = str(push_bundle(version_bundle(make_bundle, "pkg-a", "packaging", "packaging", "packaging==23.2"),
                        registry.address).reference)
    b = str(push_bundle(version_bundle(make_bundle, "pkg-b", "packaging", "packaging", "packaging==24.2"),
                        registry.address).reference)
    worker = sorted(client.scheduler_info()["workers"])[0]
    seen = []
    svc = DaskSimulationService(client)
    for ref in (a, b, a):  # each its own batch, all on one worker
        pinned = svc.pin(ref)
        seen.append(client.submit(run_sim_task, pinned.repository, pinned.digest, None, {}, 1, workers=[worker],
                                  pure=False).result(timeout=180))
    assert [s["version"] for s in seen] == ["23.2", "24.2", "23.2"], seen
    assert set(worker_version.values()) == {packaging.__version__} != {"23.2"}, "the worker runs its own packaging"
    assert all("/envs/" in s["file"] for s in seen), f"packaging must come from the bundle's environment: {seen}"


def test_four_processes_asking_for_one_new_environment_build_it_once(tmp_path, package_index):
    cache = tmp_path / "cache"
    script = textwrap.dedent(f"""
        import sys, os
        from pathlib import Path
        from modelops_infra.bundles import (BundleCache, BuildOptions, build_environment, environment_key,
                                            parse_requirements)
        spec, _, _ = parse_requirements("six==1.17.0\\n")
        key = environment_key(spec)
        cache = BundleCache({str(cache)!r})

        def build(venv, work):
            with open({str(tmp_path / "builds.log")!r}, "a") as fh:
                fh.write(f"{{os.getpid()}}\\n")
            build_environment(spec, venv, work, options=BuildOptions(index_url={package_index.url!r}))

        env, lease = cache.ensure_environment(key, build)
        print(env.python)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(4)]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    pythons = {o[0].strip() for o in outs}
    assert len(pythons) == 1, f"all four must get the same environment, got {pythons}"
    builds = (tmp_path / "builds.log").read_text().split()
    assert len(builds) == 1, f"exactly one build expected across four processes, got {len(builds)}: {builds}"
    assert subprocess.run([pythons.pop(), "-c", "import six; print(six.__version__)"], capture_output=True,
                          text=True).stdout.strip() == "1.17.0"


def test_a_build_killed_half_way_leaves_nothing_a_later_build_trips_over(tmp_path, package_index):
    cache_dir = tmp_path / "cache"
    script = textwrap.dedent(f"""
        from modelops_infra.bundles import (BundleCache, BuildOptions, build_environment, environment_key,
                                            parse_requirements)
        spec, _, _ = parse_requirements("numpy\\n")
        cache = BundleCache({str(cache_dir)!r})
        cache.ensure_environment(environment_key(spec), lambda venv, work: build_environment(
            spec, venv, work, options=BuildOptions(index_url={package_index.url!r})))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True)
    deadline = time.monotonic() + 60
    while not list((cache_dir / "staging").glob("env-*/venv")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list((cache_dir / "staging").glob("env-*/venv")), "the build should have started a venv in staging"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list((cache_dir / "envs").iterdir()) == [], "a killed build must publish nothing"

    spec, _, _ = __import__("modelops_infra.bundles", fromlist=["parse_requirements"]).parse_requirements("numpy\n")
    from modelops_infra.bundles import environment_key

    cache = BundleCache(cache_dir)
    env, lease = cache.ensure_environment(environment_key(spec), lambda venv, work: build_environment(
        spec, venv, work, options=BuildOptions(index_url=package_index.url)))
    lease.release()
    out = subprocess.run([str(env.python), "-c", "import numpy; print(numpy.__version__)"], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert [p.name for p in (cache_dir / "staging").iterdir()] == [], "the dead builder's staging must be swept"


def test_eviction_under_a_small_cap_never_removes_an_environment_in_use(tmp_path, registry, make_bundle,
                                                                         package_index):
    first_bundle = push_bundle(version_bundle(make_bundle, "evict-a", "six", "six", "six==1.17.0"), registry.address)
    other = push_bundle(version_bundle(make_bundle, "evict-b", "six", "six", "six==1.16.0"), registry.address)
    runtime = runtime_for(registry, tmp_path / "cache", package_index.url, cache_max_bytes=1)
    try:
        first = runtime.run(first_bundle.reference.repository, first_bundle.digest, None, {}, 1)
        again = runtime.run(first_bundle.reference.repository, first_bundle.digest, None, {}, 2)
        assert again["pid"] == first["pid"], "a warm child is reused while nothing new needs room"
        second = runtime.run(other.reference.repository, other.digest, None, {}, 1)
        cache = runtime.cache
        assert (first["version"], second["version"]) == ("1.17.0", "1.16.0")
        envs = sorted(p.name for p in (cache.root / "envs").iterdir())
        # Over a 1-byte cap: the idle first bundle and its environment were released and evicted; the
        # environment of the bundle whose task was running was built and kept.
        assert envs == [cache.get(other.digest).environment_key.split(":", 1)[1]], envs
        assert cache.get(first_bundle.digest) is None
        third = runtime.run(first_bundle.reference.repository, first_bundle.digest, None, {}, 3)
        assert third["version"] == "1.17.0" and third["pid"] != first["pid"], "fetched and built again"
    finally:
        runtime.close()
    BundleCache(tmp_path / "cache", max_bytes=1).evict()
    assert list((tmp_path / "cache" / "envs").iterdir()) == [], "released environments are evictable"


def test_wheels_from_the_registry_install_with_no_index_reachable_and_a_tampered_wheel_is_refused(
        tmp_path, fresh_registry, make_bundle, package_index, monkeypatch):
    monkeypatch.setenv("MODELOPS_BUNDLE_INDEX_URL", package_index.url)  # the pushing side resolves on loopback
    root = version_bundle(make_bundle, "wheels", "six", "six", "six==1.16.0")
    pushed = push_bundle(root, fresh_registry.address, wheels=True, settings=BundleSettings(cache_dir=tmp_path / "c0"))
    dead_index = "http://127.0.0.1:9/simple"  # discard port: nothing answers
    runtime = runtime_for(fresh_registry, tmp_path / "c1", dead_index)
    try:
        result = runtime.run(pushed.reference.repository, pushed.digest, None, {}, 1)
    finally:
        runtime.close()
    assert result["version"] == "1.16.0", result
    from modelops_infra.bundles import inspect_bundle

    info = inspect_bundle(str(pushed.reference), settings=BundleSettings(cache_dir=tmp_path / "c0"))
    assert [w["file"] for w in info["wheels"]] == ["six-1.16.0-py2.py3-none-any.whl"]
    assert info["environment"]["key"] == runtime.cache.get(pushed.digest).environment_key, \
        "inspect must show the key the worker keeps in its cache entry"
    wheel = info["wheels"][0]["digest"]
    blob = fresh_registry.blob_data_path(wheel)
    data = bytearray(blob.read_bytes())
    data[100] ^= 0xFF
    blob.write_bytes(bytes(data))
    runtime = runtime_for(fresh_registry, tmp_path / "c2", dead_index)
    try:
        with pytest.raises(IntegrityError) as info_err:
            runtime.run(pushed.reference.repository, pushed.digest, None, {}, 1)
    finally:
        runtime.close()
    assert wheel.split(":")[1][:12] in str(info_err.value), str(info_err.value)
    assert not (tmp_path / "c2" / "envs").exists() or list((tmp_path / "c2" / "envs").iterdir()) == []
    assert list((tmp_path / "c2" / "entries" / "sha256").iterdir()) == [], "nothing of a tampered bundle is cached"


def test_an_unsatisfiable_pin_fails_naming_the_requirement_and_the_python(tmp_path, registry, make_bundle,
                                                                          package_index):
    pushed = push_bundle(version_bundle(make_bundle, "unsat", "six", "six", "six==99.0"), registry.address)
    runtime = runtime_for(registry, tmp_path / "cache", package_index.url)
    try:
        with pytest.raises(RequirementsError) as info:
            runtime.run(pushed.reference.repository, pushed.digest, None, {}, 1)
        start = time.monotonic()
        with pytest.raises(RequirementsError) as again:
            runtime.run(pushed.reference.repository, pushed.digest, None, {}, 2)
        assert time.monotonic() - start < 0.5, "a failed build is remembered, not retried by every task"
        assert str(again.value) == str(info.value)
    finally:
        runtime.close()
    msg = str(info.value)
    assert "six==99.0" in msg, msg
    assert f"CPython {sys.version_info.major}.{sys.version_info.minor}" in msg, msg
    assert msg.count("\n") == 0, f"one line expected: {msg!r}"


@pytest.mark.parametrize(("body", "needle"), [
    ("import os\n    os._exit(3)", "exit code 3"),
    ("import ctypes\n    ctypes.string_at(0)", "SIGSEGV"),
    ("import time\n    time.sleep(30)", "timeout"),
])
def test_a_child_that_dies_or_hangs_fails_its_task_and_the_next_task_runs(registry, client, make_bundle, body,
                                                                           needle):
    root = make_bundle(f"dies-{needle.split()[0].lower()}", {"sim.py": f"""
def crash(params, seed):
    {body}

def run(params, seed):
    return {{"ok": True}}
"""}, entrypoint="sim:run")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["isolation"] = "process"
    (root / "manifest.json").write_text(json.dumps(manifest))
    ref = str(push_bundle(root, registry.address).reference)
    svc = DaskSimulationService(client)
    worker = sorted(client.scheduler_info()["workers"])[0]

    def on_worker(task: SimTask):  # both tasks on one worker: its child dies, it stays and runs the next
        *args, key = svc._args(task)
        return client.submit(run_sim_task, *args, key=key, pure=False, workers=[worker], allow_other_workers=False)

    start = time.monotonic()
    with pytest.raises(BundleRunError) as info:
        on_worker(SimTask(ref, {}, 1, fn_ref="sim:crash", timeout=2)).result(timeout=60)
    assert needle in str(info.value), str(info.value)
    assert time.monotonic() - start < 30
    after = on_worker(SimTask(ref, {}, 2))
    assert after.result(timeout=60) == {"ok": True}
    assert client.who_has([after])[after.key] == (worker,), "the next task ran on the worker whose child died"
    assert worker in client.scheduler_info()["workers"], "the Dask worker must survive its child's death"


PID_SIM = "import os, time\n\ndef run(params, seed):\n    time.sleep(params.get('sleep', 0))\n" \
          "    return {'pid': os.getpid()}\n"


def test_the_manifest_decides_where_a_bundle_without_an_environment_runs(tmp_path, registry, make_bundle):
    """No environment: in the worker's own process, unless the manifest asks for a child (``isolation``) or a
    ``timeout``, which needs a process it can kill."""
    def pushed(name: str, **manifest_extra):
        root = make_bundle(name, {"sim.py": PID_SIM})
        manifest = json.loads((root / "manifest.json").read_text())
        (root / "manifest.json").write_text(json.dumps({**manifest, **manifest_extra}))
        return push_bundle(root, registry.address)

    here, warm, fresh, timed = (pushed("here"), pushed("warm", isolation="process"),
                                pushed("fresh", isolation="fresh"), pushed("timed", timeout=1.5))
    runtime = runtime_for(registry, tmp_path / "cache", "http://127.0.0.1:9/simple")

    def run(bundle, **params) -> int:
        return runtime.run(bundle.reference.repository, bundle.digest, None, params, 1)["pid"]

    try:
        assert run(here) == run(here) == os.getpid(), "the in-process fast path"
        first = run(warm)
        assert first == run(warm) != os.getpid(), "one warm child for every task"
        a, b = run(fresh), run(fresh)
        assert len({a, b, os.getpid()}) == 3, "a new process for each task"
        start = time.monotonic()
        with pytest.raises(BundleRunError) as info:
            run(timed, sleep=30)
        assert "exceeded its timeout of 1.5 s" in str(info.value), str(info.value)
        assert time.monotonic() - start < 15
        assert run(timed) != os.getpid(), "a task with a timeout runs in a child"
    finally:
        runtime.close()


def test_the_environment_key_is_kept_in_the_cache_entry(tmp_path, registry, make_bundle, package_index):
    root = version_bundle(make_bundle, "keyed", "six", "six", "six==1.17.0")
    pushed = push_bundle(root, registry.address)
    cache = BundleCache(tmp_path / "cache")
    from modelops_infra.bundles import RegistryClient, environment_key

    with RegistryClient(registry.address) as c:
        local = cache.ensure(pushed.reference.repository, pushed.digest, client=c)
    spec, _ = find_environment(root)
    assert spec is not None
    meta = json.loads((cache.entry_dir(pushed.digest) / "meta.json").read_text())
    assert meta["environment"]["key"] == local.environment_key == environment_key(spec)
    assert meta["environment"]["file"] == "requirements.txt"


def _uv(*args: str, cwd: Path, cache: Path) -> str:
    from modelops_infra.bundles._envbuild import uv_binary

    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "PIP_"))}
    env.update(UV_CACHE_DIR=str(cache), UV_PYTHON_DOWNLOADS="never", UV_NO_PROGRESS="1")
    out = subprocess.run([uv_binary(), *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("kind", ["pylock.toml", "uv.lock"])
def test_a_locked_environment_is_built_from_its_lock(tmp_path, registry, make_bundle, package_index, kind):
    root = make_bundle(f"locked-{kind.split('.')[0]}", {"sim.py": VERSION_SIM.format(module="six", dist="six")})
    if kind == "pylock.toml":
        (tmp_path / "req.in").write_text("six==1.16.0\n")
        _uv("pip", "compile", "--format", "pylock.toml", "--index-url", package_index.url, "-o",
            str(root / "pylock.toml"), str(tmp_path / "req.in"), cwd=tmp_path, cache=tmp_path / "uvc")
    else:
        (root / "pyproject.toml").write_text(textwrap.dedent(f"""
            [project]
            name = "locked"
            version = "1.0.0"
            requires-python = ">={sys.version_info.major}.{sys.version_info.minor}"
            dependencies = ["six==1.16.0"]

            [[tool.uv.index]]
            url = "{package_index.url}"
            default = true
        """))
        _uv("lock", cwd=root, cache=tmp_path / "uvc")
    spec, problems = find_environment(root)
    assert problems == [] and spec is not None and spec.source == kind
    pushed = push_bundle(root, registry.address)
    runtime = runtime_for(registry, tmp_path / "cache", package_index.url)
    try:
        result = runtime.run(pushed.reference.repository, pushed.digest, None, {}, 1)
    finally:
        runtime.close()
    assert result["version"] == "1.16.0", result
    assert "/envs/" in result["file"], result


def test_in_a_namespace_whose_only_route_is_the_registry_wheels_install_and_run(
        tmp_path, netns, make_bundle, package_index):
    """The worker runs in its own network namespace: its only peer is the registry (an nft rule drops the
    rest), and the package index is on the host's loopback, out of its reach."""
    port = 5000
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
                      f"http:\n  addr: {netns.host_ip}:{port}\n")
    with open(tmp_path / "registry.log", "wb") as log:
        proc = subprocess.Popen([registry_binary(), "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    address = f"{netns.host_ip}:{port}"
    try:
        deadline = time.monotonic() + 20
        while subprocess.run(["curl", "-sf", f"http://{address}/v2/"], capture_output=True).returncode != 0:
            assert time.monotonic() < deadline, "registry did not start"
            time.sleep(0.1)
        settings = BundleSettings(insecure=True, cache_dir=tmp_path / "push-cache")
        pushed = push_bundle(version_bundle(make_bundle, "ns-wheels", "six", "six", "six==1.16.0"), address,
                             wheels=True, settings=settings)
        sh(*netns.exec("nft", "add", "table", "inet", "only_registry"))
        sh(*netns.exec("nft", "add", "chain", "inet", "only_registry", "out",
                       "{ type filter hook output priority 0; policy drop; }"))
        sh(*netns.exec("nft", "add", "rule", "inet", "only_registry", "out", "ip", "daddr", netns.host_ip,
                       "tcp", "dport", str(port), "accept"))
        script = textwrap.dedent(f"""
            import json
            from pathlib import Path
            from modelops_infra.bundles import BuildOptions, BundleSettings
            from modelops_infra.worker import BundleRuntime
            rt = BundleRuntime(BundleSettings(registry={address!r}, insecure=True, cache_dir=Path({str(tmp_path / 'c')!r})),
                               build_options=BuildOptions(index_url={package_index.url!r}))
            try:
                print(json.dumps(rt.run({pushed.reference.repository!r}, {pushed.digest!r}, None, {{}}, 1)))
            finally:
                rt.close()
        """)
        probe = subprocess.run(netns.exec(sys.executable, "-c",
                                          f"import urllib.request; urllib.request.urlopen({package_index.url!r}, timeout=3)"),
                               capture_output=True, text=True)
        assert probe.returncode != 0, "the package index must be unreachable from the worker's namespace"
        out = subprocess.run(netns.exec(sys.executable, "-c", script), capture_output=True, text=True, timeout=180)
        assert out.returncode == 0, out.stderr[-3000:]
        assert json.loads(out.stdout.strip().splitlines()[-1])["version"] == "1.16.0"
    finally:
        stop(proc)


def test_a_lock_for_another_python_fails_naming_the_file_the_requirement_and_the_workers_python(
        tmp_path, registry, make_bundle, package_index):
    import re

    root = make_bundle("future-python", {"sim.py": VERSION_SIM.format(module="six", dist="six")})
    (tmp_path / "req.in").write_text("six==1.16.0\n")
    _uv("pip", "compile", "--format", "pylock.toml", "--index-url", package_index.url, "-o",
        str(root / "pylock.toml"), str(tmp_path / "req.in"), cwd=tmp_path, cache=tmp_path / "uvc")
    text = (root / "pylock.toml").read_text()
    text, n = re.subn(r'(?m)^requires-python = ".*"$', 'requires-python = ">=3.99"', text)
    assert n == 1, text
    (root / "pylock.toml").write_text(text)
    pushed = push_bundle(root, registry.address)
    runtime = runtime_for(registry, tmp_path / "cache", package_index.url)
    try:
        with pytest.raises(RequirementsError) as info:
            runtime.run(pushed.reference.repository, pushed.digest, None, {}, 1)
    finally:
        runtime.close()
    msg = str(info.value)
    assert "pylock.toml requires Python >=3.99, and the workers run Python " \
           f"{sys.version_info.major}.{sys.version_info.minor}." in msg, msg
    assert msg.count("\n") == 0, f"one line expected: {msg!r}"
    assert not (tmp_path / "cache" / "envs").exists() or list((tmp_path / "cache" / "envs").iterdir()) == []
