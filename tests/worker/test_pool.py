"""ProcessPool: warm isolated children that run bundle code, with real processes and no mocks."""

from __future__ import annotations

import os
import pickle
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from modelops_infra.errors import BundleRunError
from modelops_infra.worker import ChildSpec, ProcessPool, minimal_child_env

DIGEST = "sha256:" + "ab" * 32

SIM = '''
import os
import signal
import sys
import time


def pid(params, seed):
    return {"pid": os.getpid(), "seed": seed, "params": params}


def sleep(params, seed):
    time.sleep(params["seconds"])
    return {"pid": os.getpid()}


def fail(params, seed):
    raise ValueError("alpha must be positive, got " + str(params["alpha"]))


def exit3(params, seed):
    os._exit(3)


def segfault(params, seed):
    import ctypes
    ctypes.string_at(0)


def sigkill(params, seed):
    os.kill(os.getpid(), signal.SIGKILL)


def not_a_dict(params, seed):
    return [1, 2, 3]


def not_json(params, seed):
    return {"values": {1, 2, 3}}


def environ(params, seed):
    return {"environ": dict(os.environ)}


def where(params, seed):
    return {"cwd": os.getcwd(), "path0": sys.path[0], "executable": sys.executable}


def orphan(params, seed):
    grandchild = os.fork()
    if grandchild == 0:  # holds the child's pipe ends, as a forked helper of a real model might
        time.sleep(30)
        os._exit(0)
    with open(params["path"], "w") as f:
        f.write(str(grandchild))
    os._exit(3)


def chatty(params, seed):
    print("\\x00\\x00\\x00\\x10{\\"ok\\": false}", flush=False)
    print("printed by the bundle " * 2000)
    sys.stdout.write("no newline at the end")
    return {"pid": os.getpid()}
'''


def alive(pid: int) -> bool:
    """Whether a process with ``pid`` exists (a reaped child does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (an orphan's zombie may wait for a lax init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


@pytest.fixture
def bundle_root(tmp_path: Path) -> Path:
    root = tmp_path / "bundle"
    root.mkdir()
    (root / "sim.py").write_text(textwrap.dedent(SIM))
    return root


@pytest.fixture
def spec_for(bundle_root: Path) -> Callable[..., ChildSpec]:
    def _spec(key: str = "", *, python: str = sys.executable) -> ChildSpec:
        return ChildSpec(key=(DIGEST, key), python=python, root=bundle_root, env=minimal_child_env(os.environ))

    return _spec


@pytest.fixture
def pool() -> Iterator[ProcessPool]:
    p = ProcessPool(4, idle_timeout=60.0, start_timeout=20.0)
    yield p
    p.close()


def run(pool: ProcessPool, spec: ChildSpec, fn: str, params: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    return pool.run(spec, f"sim:{fn}", params or {}, 7, digest=DIGEST, **kw)


# -- reuse, concurrency, cap, idle ---------------------------------------------------------------

def test_runs_on_one_key_reuse_one_warm_child_and_another_key_gets_its_own(pool, spec_for):
    pids = {run(pool, spec_for("a"), "pid", {"i": i})["pid"] for i in range(20)}
    assert len(pids) == 1, f"expected 20 runs on one key to share one child, got pids {pids}"
    other = run(pool, spec_for("b"), "pid")["pid"]
    assert other not in pids, "expected a different key to get a different child"
    assert pool.stats()["spawned"] == 2, f"expected exactly 2 spawns, got {pool.stats()}"


def test_params_and_seed_reach_the_entry_function(pool, spec_for):
    result = run(pool, spec_for(), "pid", {"alpha": 0.5, "names": ["x", "y"]})
    assert result["params"] == {"alpha": 0.5, "names": ["x", "y"]}, f"expected params round-tripped, got {result}"
    assert result["seed"] == 7, f"expected the seed passed to run, got {result['seed']}"


def test_child_runs_in_the_bundle_root_with_the_given_interpreter(pool, spec_for, bundle_root):
    result = run(pool, spec_for(), "where")
    assert Path(result["cwd"]) == bundle_root, f"expected cwd to be the bundle root, got {result['cwd']}"
    assert Path(result["path0"]) == bundle_root, f"expected sys.path[0] to be the bundle root, got {result['path0']}"
    assert result["executable"] == sys.executable, f"expected the spec's interpreter, got {result['executable']}"
    assert not (bundle_root / "__pycache__").exists(), "expected no __pycache__ written into the bundle tree"


def test_concurrent_runs_use_up_to_max_processes_children_at_once(pool, spec_for):
    spec = spec_for()
    start = time.monotonic()
    with ThreadPoolExecutor(4) as ex:
        results = list(ex.map(lambda _: run(pool, spec, "sleep", {"seconds": 0.5}), range(4)))
    elapsed = time.monotonic() - start
    assert len({r["pid"] for r in results}) == 4, f"expected 4 distinct children, got {results}"
    assert elapsed < 1.6, f"expected 4 x 0.5 s to run in parallel (well under 2 s), took {elapsed:.2f} s"
    assert pool.stats() == {"processes": 4, "idle": 4, "busy": 0, "spawned": 4}, f"got {pool.stats()}"


def test_never_more_than_max_processes_children_across_keys(spec_for):
    pool = ProcessPool(2, idle_timeout=60.0)
    peak = 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, pool.stats()["processes"])
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        jobs = [spec_for(k) for k in ("a", "b", "c")] * 3
        with ThreadPoolExecutor(6) as ex:
            results = list(ex.map(lambda s: run(pool, s, "sleep", {"seconds": 0.1}), jobs))
        assert len(results) == 9, "expected all 9 tasks to finish despite the cap"
    finally:
        stop.set()
        sampler.join()
        pool.close()
    assert peak <= 2, f"expected at most 2 live children with max_processes=2, saw {peak}"


def test_at_the_cap_the_least_recently_used_idle_child_of_another_key_is_stopped(spec_for):
    pool = ProcessPool(2, idle_timeout=60.0)
    try:
        pid_a = run(pool, spec_for("a"), "pid")["pid"]
        pid_b = run(pool, spec_for("b"), "pid")["pid"]
        run(pool, spec_for("c"), "pid")
        assert not alive(pid_a), "expected the LRU idle child (key a) to be stopped to make room for key c"
        assert run(pool, spec_for("b"), "pid")["pid"] == pid_b, "expected key b's child to survive and be reused"
        assert pool.stats()["processes"] == 2, f"expected 2 children, got {pool.stats()}"
    finally:
        pool.close()


def test_children_idle_longer_than_idle_timeout_are_stopped(spec_for):
    pool = ProcessPool(2, idle_timeout=0.3)
    try:
        pid = run(pool, spec_for(), "pid")["pid"]
        assert wait_until(lambda: pool.stats()["processes"] == 0, timeout=3.0), \
            f"expected the idle child to be stopped after 0.3 s, stats {pool.stats()}"
        assert not alive(pid), f"expected child {pid} to be gone"
        assert run(pool, spec_for(), "pid")["pid"] != pid, "expected a new child after the idle one was stopped"
    finally:
        pool.close()


def test_fresh_gives_a_new_child_for_each_task_and_stops_it_after(pool, spec_for):
    pids = [run(pool, spec_for(), "pid", fresh=True)["pid"] for _ in range(3)]
    assert len(set(pids)) == 3, f"expected a new child per fresh task, got {pids}"
    assert not any(alive(p) for p in pids), "expected each fresh child to be stopped after its task"
    assert pool.stats()["processes"] == 0, f"expected no children left, got {pool.stats()}"


# -- failures ------------------------------------------------------------------------------------

def test_bundle_exception_comes_back_with_type_and_traceback_and_the_child_stays(pool, spec_for, bundle_root):
    spec = spec_for()
    pid = run(pool, spec, "pid")["pid"]
    with pytest.raises(BundleRunError) as info:
        run(pool, spec, "fail", {"alpha": -1})
    err = info.value
    assert err.stage == "run" and err.message.startswith("entrypoint "), \
        f"expected a run-stage error whose message does not repeat the stage, got {err.stage!r}: {err}"
    assert "ValueError: alpha must be positive, got -1" in str(err), f"expected type and message, got {err}"
    assert err.exception_type == "ValueError", f"expected exception_type ValueError, got {err.exception_type}"
    assert str(bundle_root / "sim.py") in err.remote_traceback, \
        f"expected the traceback to name the bundle's file, got {err.remote_traceback}"
    assert "_child.py" not in err.remote_traceback, "expected the child's own frames left out of the traceback"
    assert err.digest == DIGEST, f"expected digest attr {DIGEST}, got {err.digest}"
    assert run(pool, spec, "pid")["pid"] == pid, "expected the same child to serve the next task"


def test_missing_module_or_function_is_a_load_error(pool, spec_for):
    with pytest.raises(BundleRunError, match="loading entrypoint nomodule:run .* ModuleNotFoundError"):
        pool.run(spec_for(), "nomodule:run", {}, 1, digest=DIGEST)
    with pytest.raises(BundleRunError, match="has no function 'nope'"):
        pool.run(spec_for(), "sim:nope", {}, 1, digest=DIGEST)


@pytest.mark.parametrize(("fn", "expected", "attrs"), [
    ("exit3", "died with exit code 3", {"exit_code": 3}),
    ("segfault", "was killed by signal SIGSEGV", {"signal": "SIGSEGV"}),
    ("sigkill", "was killed by signal SIGKILL", {"signal": "SIGKILL"}),
])
def test_a_dying_child_fails_only_its_task_and_the_next_task_gets_a_new_child(pool, spec_for, fn, expected, attrs):
    spec = spec_for()
    pid = run(pool, spec, "pid")["pid"]
    with pytest.raises(BundleRunError) as info:
        run(pool, spec, fn)
    assert str(info.value).startswith(f"the process running bundle {DIGEST} {expected}"), \
        f"expected '{expected}', got {info.value}"
    assert info.value.stage == "run", f"expected stage 'run', got {info.value.stage!r}"
    for name, value in attrs.items():
        assert getattr(info.value, name) == value, f"expected {name}={value!r} on the error"
    assert not alive(pid), "expected the dead child to be reaped"
    assert pool.stats()["processes"] == 0, f"expected the dead child's slot freed, got {pool.stats()}"
    assert run(pool, spec, "pid")["pid"] != pid, "expected the next task to run in a fresh child"


def test_a_child_that_dies_while_a_grandchild_holds_its_pipe_is_detected_and_its_group_killed(
        pool, spec_for, tmp_path):
    start = time.monotonic()
    with pytest.raises(BundleRunError, match="died with exit code 3"):
        run(pool, spec_for(), "orphan", {"path": str(tmp_path / "grandchild.pid")}, timeout=20)
    assert time.monotonic() - start < 5, "expected the death noticed within the liveness tick, not the timeout"
    grandchild = int((tmp_path / "grandchild.pid").read_text())
    assert wait_until(lambda: not running(grandchild), timeout=2), "expected the child's process group killed"


def test_a_task_over_its_timeout_is_killed_promptly(pool, spec_for):
    spec = spec_for()
    pid = run(pool, spec, "pid")["pid"]
    start = time.monotonic()
    with pytest.raises(BundleRunError) as info:
        run(pool, spec, "sleep", {"seconds": 30}, timeout=1)
    elapsed = time.monotonic() - start
    assert info.value.render().startswith(f"run: task of bundle {DIGEST} exceeded its timeout of 1 s"), \
        f"expected a timeout message, got {info.value}"
    assert info.value.timeout == 1, f"expected timeout attr 1, got {info.value.timeout}"
    assert elapsed < 3.0, f"expected the task to fail about 1 s in, took {elapsed:.2f} s"
    assert not alive(pid), "expected the overrunning child to be killed"
    assert run(pool, spec, "pid")["pid"] != pid, "expected the next task to run in a fresh child"


def test_non_dict_and_non_json_results_are_clear_errors(pool, spec_for):
    spec = spec_for()
    with pytest.raises(BundleRunError, match="returned list, expected a JSON-serializable dict"):
        run(pool, spec, "not_a_dict")
    with pytest.raises(BundleRunError, match="returned a dict that is not JSON-serializable .*set"):
        run(pool, spec, "not_json")
    assert pool.stats()["spawned"] == 1, "expected a bad result to leave the child in service"


def test_params_that_are_not_json_fail_before_any_child_starts(pool, spec_for):
    with pytest.raises(BundleRunError, match="params .* cannot be sent"):
        run(pool, spec_for(), "pid", {"x": object()})
    assert pool.stats()["spawned"] == 0, "expected no child started for unsendable params"


def test_an_interpreter_that_cannot_start_is_named_in_the_error(pool, spec_for, tmp_path):
    with pytest.raises(BundleRunError) as info:
        run(pool, spec_for("missing", python=str(tmp_path / "no-such-python")), "pid")
    assert str(tmp_path / "no-such-python") in str(info.value), f"expected the interpreter named, got {info.value}"
    with pytest.raises(BundleRunError) as info:
        run(pool, spec_for("false", python="/bin/false"), "pid")
    assert "/bin/false" in str(info.value) and "exit code 1 before it was ready" in str(info.value), \
        f"expected interpreter and exit code, got {info.value}"
    assert info.value.exit_code == 1, f"expected exit_code attr 1, got {info.value.exit_code}"
    assert pool.stats()["processes"] == 0, f"expected failed starts to free their slots, got {pool.stats()}"


def test_bundle_run_error_pickles_with_its_attrs(pool, spec_for):
    with pytest.raises(BundleRunError) as info:
        run(pool, spec_for(), "fail", {"alpha": -1})
    with pytest.raises(BundleRunError) as died:
        run(pool, spec_for(), "exit3")
    for err in (info.value, died.value):
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is BundleRunError and str(copy) == str(err), f"expected {err!r} to survive pickling"
        assert copy._attrs == err._attrs, f"expected attrs {err._attrs}, got {copy._attrs}"
        assert (copy.stage, copy.hint) == (err.stage, err.hint) == ("run", err.hint), \
            f"expected stage 'run' and the hint to survive pickling, got {copy.stage!r}, {copy.hint!r}"
    assert pickle.loads(pickle.dumps(died.value)).exit_code == 3, "expected exit_code to survive pickling"


# -- isolation -----------------------------------------------------------------------------------

def test_child_environment_holds_no_credentials(pool, spec_for, monkeypatch):
    secrets = {"REGISTRY_PASSWORD": "hunter2", "ARM_CLIENT_SECRET": "s3cret", "AZURE_CLIENT_SECRET": "s3cret",
               "MODELOPS_BUNDLE_REGISTRY": "reg.example", "PULUMI_CONFIG_PASSPHRASE": "pass",
               "PYTHONPATH": "/somewhere"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    env = run(pool, spec_for(), "environ")["environ"]
    leaked = sorted(set(secrets) & set(env))
    assert not leaked, f"expected no credentials in the child's environment, found {leaked}"
    assert env.get("OMP_NUM_THREADS") == "1", "expected thread-count knobs passed through"
    assert env.get("PATH") == os.environ["PATH"], "expected PATH passed through"


def test_minimal_child_env_is_an_allow_list():
    environ = {"PATH": "/bin", "HOME": "/tmp", "LC_ALL": "C.UTF-8", "TZ": "UTC", "MKL_NUM_THREADS": "2",
               "REGISTRY_PASSWORD": "x", "MODELOPS_BUNDLE_PASSWORD": "x", "ARM_CLIENT_SECRET": "x",
               "AZURE_CLIENT_SECRET": "x", "PULUMI_ACCESS_TOKEN": "x", "VIRTUAL_ENV": "/venv", "PYTHONHOME": "/x"}
    assert minimal_child_env(environ) == {
        "PATH": "/bin", "HOME": "/tmp", "LC_ALL": "C.UTF-8", "TZ": "UTC", "MKL_NUM_THREADS": "2",
        "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1",
    }, "expected only allow-listed variables plus the fixed Python settings"


def test_bundle_prints_go_to_stderr_and_do_not_break_the_protocol(pool, spec_for, capfd):
    spec = spec_for()
    pid = run(pool, spec, "chatty")["pid"]
    assert run(pool, spec, "pid")["pid"] == pid, "expected the child to keep serving after printing"
    out, err = capfd.readouterr()
    assert "printed by the bundle" in err, "expected the bundle's stdout to land on the worker's stderr"
    assert "printed by the bundle" not in out, "expected nothing from the bundle on the worker's stdout"


# -- lifecycle -----------------------------------------------------------------------------------

def test_close_leaves_no_child_alive_and_is_idempotent(spec_for):
    pool = ProcessPool(4)
    pids = [run(pool, spec_for(k), "pid")["pid"] for k in ("a", "b", "c")]
    assert all(alive(p) for p in pids), "expected the children to be warm before close"
    pool.close()
    assert not [p for p in pids if alive(p)], "expected close() to stop every child"
    pool.close()
    assert pool.stats()["processes"] == 0, f"expected no children after close, got {pool.stats()}"
    with pytest.raises(BundleRunError, match="pool is closed"):
        run(pool, spec_for("a"), "pid")


def test_close_kills_busy_children_and_their_tasks_fail(spec_for):
    pool = ProcessPool(2)
    errors: list[BaseException] = []

    def task() -> None:
        try:
            run(pool, spec_for(), "sleep", {"seconds": 30})
        except BundleRunError as exc:
            errors.append(exc)

    worker = threading.Thread(target=task)
    worker.start()
    assert wait_until(lambda: pool.stats()["busy"] == 1), "expected the task to start"
    start = time.monotonic()
    pool.close()
    worker.join(timeout=5)
    assert not worker.is_alive() and time.monotonic() - start < 5, "expected close() to end the running task"
    assert errors and "closed while bundle" in str(errors[0]), f"expected the task to fail naming close, got {errors}"
    assert pool.stats()["processes"] == 0, f"expected no children after close, got {pool.stats()}"
