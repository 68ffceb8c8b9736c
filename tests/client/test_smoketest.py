"""``run_smoke_test``: stage-by-stage report shared by the CLI and the BundleSmokeTest provider."""

from __future__ import annotations

import json
import time

import pytest
import requests

from harness.services import free_port, start_dask
from modelops_infra.bundles import pack_bundle, push_bundle
from modelops_infra.client._smoketest import STAGES, run_smoke_test
from modelops_infra.errors import SmokeTestError


def test_a_pass_times_every_stage_and_names_the_worker(cluster, registry) -> None:
    report = run_smoke_test(bundle=None, registry=registry.address, scheduler=cluster.scheduler_address, timeout=60)
    assert report.passed, report.error
    assert list(report.timings) == list(STAGES)
    assert report.worker and report.worker.startswith("tcp://127.0.0.1:")
    assert report.result["seed"] == 12345
    report.raise_for_failure()  # a pass raises nothing
    assert report.to_dict()["stage"] is None


def test_a_raising_entrypoint_fails_at_run_and_raise_for_failure_carries_the_stage(cluster, registry,
                                                                                   make_bundle) -> None:
    bundle = make_bundle("libboom", {"sim.py": "def run(params, seed):\n    raise ValueError('nope')\n"})
    report = run_smoke_test(bundle=bundle, registry=registry.address, scheduler=cluster.scheduler_address, timeout=60)
    assert not report.passed and report.stage == "run"
    assert report.error.startswith("entrypoint sim:run of bundle sha256:") and "nope" in report.error, \
        "the error is the message without the stage, which is its own key"
    with pytest.raises(SmokeTestError) as info:
        report.raise_for_failure()
    assert info.value.stage == "run" and info.value.message == report.error
    assert info.value.render().startswith("run: entrypoint sim:run of bundle sha256:")


def test_a_tampered_blob_fails_at_fetch_with_an_integrity_error(cluster, registry, make_bundle) -> None:
    bundle = make_bundle("tampered", {"sim.py": "def run(params, seed):\n    return {'tampered': %r}\n" % time.time()})
    packed = pack_bundle(bundle)
    push_bundle(bundle, registry.address)
    code_layer = packed.layers[0].descriptor.digest
    registry.blob_data_path(code_layer).write_bytes(b"not the bytes you pushed")
    report = run_smoke_test(bundle=bundle, registry=registry.address, scheduler=cluster.scheduler_address, timeout=60)
    assert not report.passed and report.stage == "fetch", report.error
    assert not report.error.startswith("fetch") and "sha256:" in report.error, report.error
    assert "run" not in report.timings, "stages after the failed one must not run"


def test_an_unreachable_registry_fails_at_push(cluster, make_bundle, monkeypatch) -> None:
    monkeypatch.setenv("MODELOPS_BUNDLE_TIMEOUT", "2")
    report = run_smoke_test(bundle=make_bundle("nopush"), registry=f"127.0.0.1:{free_port()}",
                            scheduler=cluster.scheduler_address, timeout=10)
    assert not report.passed and report.stage == "push" and report.error.startswith("registry 127.0.0.1:")
    assert report.hint, "the registry error's hint is kept on the report, apart from the message"
    assert report.to_dict()["hint"] == report.hint and "hint:" not in report.error
    assert report.bundle_ref is None


def test_no_workers_fails_at_workers_within_the_timeout(tmp_path, registry) -> None:
    lonely = start_dask(tmp_path / "lonely", workers=0)
    try:
        start = time.monotonic()
        report = run_smoke_test(bundle=None, registry=registry.address, scheduler=lonely.scheduler_address, timeout=3)
        elapsed = time.monotonic() - start
    finally:
        lonely.stop()
    assert not report.passed and report.stage == "workers"
    assert report.error.startswith("no worker within 3 s"), report.error
    assert elapsed < 15, f"waiting for workers must be bounded by the timeout, took {elapsed:.1f} s"


def test_bad_arguments_are_rejected_before_any_stage() -> None:
    with pytest.raises(ValueError):
        run_smoke_test(bundle=None, registry="r:1", scheduler="tcp://x:1", timeout=0)


def test_a_bundle_that_changed_since_planning_fails_at_pack(registry) -> None:
    report = run_smoke_test(bundle=None, registry=registry.address, scheduler="tcp://127.0.0.1:1", timeout=5,
                            expected_digest="sha256:" + "0" * 64)
    assert not report.passed and report.stage == "pack"
    assert "now packs to" in report.error and f"not sha256:{'0' * 64} as at preview" in report.error
    assert "push" not in report.timings


def test_explicit_registry_credentials_are_used_for_the_push(tmp_path) -> None:
    from harness.services import start_registry, write_htpasswd
    from modelops_infra.bundles import BasicCredentials

    secured = start_registry(tmp_path / "auth", htpasswd=write_htpasswd(tmp_path / "htpasswd", {"ci": "s3cret"}))
    try:
        wrong = run_smoke_test(bundle=None, registry=secured.address, scheduler="tcp://127.0.0.1:1", timeout=2,
                               credentials=BasicCredentials("ci", "wrong", "test"))
        right = run_smoke_test(bundle=None, registry=secured.address, scheduler="tcp://127.0.0.1:1", timeout=2,
                               credentials=BasicCredentials("ci", "s3cret", "test"))
    finally:
        secured.stop()
    assert wrong.stage == "push" and secured.address in wrong.error
    assert right.bundle_ref is not None and right.stage == "connect", "push succeeds; nothing listens at connect"


def test_a_run_that_times_out_says_where_the_task_was(tmp_path, registry, make_bundle) -> None:
    """A hung simulation is named by the worker and the line it is on; a cluster whose threads are all
    taken is named as such. A cluster of its own: the hung task keeps its worker thread until stopped."""
    slow = make_bundle("slowpoke", {"sim.py": "import time\n\ndef run(params, seed):\n    time.sleep(120)\n"})
    own = start_dask(tmp_path / "slow", workers=1, nthreads=1,
                     worker_env={"MODELOPS_BUNDLE_REGISTRY": registry.address,
                                 "MODELOPS_BUNDLE_CACHE_DIR": str(tmp_path / "cache")})
    try:
        hung = run_smoke_test(bundle=slow, registry=registry.address, scheduler=own.scheduler_address, timeout=8)
        queued = run_smoke_test(bundle=None, registry=registry.address, scheduler=own.scheduler_address, timeout=4)
    finally:
        own.stop()
    assert not hung.passed and hung.stage == "run", hung.error
    assert "did not finish within 8 s (timeout); it was running on worker tcp://127.0.0.1:" in hung.error
    assert "time.sleep(120)" in hung.error, hung.error
    assert not queued.passed and queued.stage == "fetch", queued.error
    # the hung task was cancelled, so the scheduler forgot it, but it still holds the only thread
    assert "it was waiting on worker tcp://127.0.0.1:" in queued.error, queued.error
    assert "whose threads ran 1 other task(s)" in queued.error and "time.sleep(120)" in queued.error, queued.error


def test_a_connection_that_opens_and_never_answers_is_given_up_and_another_made(cluster, registry,
                                                                                monkeypatch) -> None:
    """What a port-forward through the Kubernetes API occasionally does: the first stream never relays."""
    import socket
    import threading

    from modelops_infra.client import _smoketest

    monkeypatch.setattr(_smoketest, "_CONNECT_ATTEMPT", 2.0)
    host, port = cluster.scheduler_address.removeprefix("tcp://").rsplit(":", 1)
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def relay() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if not held:
                held.append(conn)  # the first connection: accepted, then silence
                continue
            upstream = socket.create_connection((host, int(port)))
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    threading.Thread(target=relay, daemon=True).start()
    try:
        start = time.monotonic()
        report = run_smoke_test(bundle=None, registry=registry.address,
                                scheduler=f"tcp://127.0.0.1:{listener.getsockname()[1]}", timeout=20)
        assert report.passed, report.error
        assert held, "the first connection was the silent one"
        # The first attempt is given up after _CONNECT_ATTEMPT (Dask alone would wait forever).
        assert 2.0 <= report.timings["connect"] < 8, report.timings
        assert time.monotonic() - start < 20
    finally:
        listener.close()
        for conn in held:
            conn.close()


def _pipe(src, dst) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(2)
            except OSError:
                pass


def test_a_smoke_bundle_that_ships_its_wheels_runs_on_workers_that_reach_no_index(
        tmp_path, registry, package_index, make_bundle, monkeypatch) -> None:
    """``"wheels": true`` in the smoke bundle's manifest: the deploy pushes the wheels, as ``mops bundle push``
    does, and proves that workers whose only source is the registry run it. Preview's digest is the sources'."""
    bundle = make_bundle("shipped", {"sim.py": "import six\n\ndef run(params, seed):\n"
                                               "    return {'six': six.__version__, 'file': six.__file__}\n"},
                         requirements="six==1.17.0\n")
    manifest = json.loads((bundle / "manifest.json").read_text())
    (bundle / "manifest.json").write_text(json.dumps({**manifest, "wheels": True}))
    sources = pack_bundle(bundle).digest
    monkeypatch.setenv("MODELOPS_BUNDLE_INDEX_URL", package_index.url)  # where the pushing side resolves
    own = start_dask(tmp_path / "no-index", workers=1, nthreads=1,
                     worker_env={"MODELOPS_BUNDLE_REGISTRY": registry.address,
                                 "MODELOPS_BUNDLE_CACHE_DIR": str(tmp_path / "cache"),
                                 "MODELOPS_BUNDLE_INDEX_URL": "http://127.0.0.1:9/simple"})  # nothing answers
    try:
        report = run_smoke_test(bundle=bundle, registry=registry.address, scheduler=own.scheduler_address,
                                timeout=120, expected_digest=sources)
    finally:
        own.stop()
    assert report.passed, report.error
    assert report.result["six"] == "1.17.0" and "/envs/" in report.result["file"], report.result
    pushed = report.bundle_ref.rsplit("@", 1)[1]
    assert pushed != sources, "the pushed bundle carries its wheels, so its digest is not the sources' alone"
    repository = report.bundle_ref.split("/", 1)[1].rsplit("@", 1)[0]
    layers = requests.get(f"http://{registry.address}/v2/{repository}/manifests/{pushed}", timeout=5, headers={
        "Accept": "application/vnd.oci.image.manifest.v1+json"}).json()["layers"]
    titles = [layer.get("annotations", {}).get("org.opencontainers.image.title", "") for layer in layers]
    assert any(t.endswith("six-1.17.0-py2.py3-none-any.whl") for t in titles), titles
    assert package_index.requests_matching("six-1.17.0") >= 1, "the wheel came from the loopback index"
