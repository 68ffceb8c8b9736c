"""A process waiting on a bundle lock is told who holds it, and gives up with an error that names the holder.

The holder is a real second process; the lock is the operating system's.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelops_infra.bundles._locks import HolderLock
from modelops_infra.errors import CacheError

HOLD = """
import sys, time
from modelops_infra.bundles._locks import HolderLock
lock = HolderLock(sys.argv[1], timeout=5)
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def hold(path: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held", "the holder should take the lock"
    return proc


def test_a_waiter_that_times_out_names_the_lock_file_and_the_holding_process(tmp_path, caplog):
    path = tmp_path / "locks" / "abc.lock"
    path.parent.mkdir()
    holder = hold(path)
    try:
        caplog.set_level(logging.INFO, logger="modelops_infra.bundles._locks")
        started = time.monotonic()
        with pytest.raises(CacheError) as info:
            HolderLock(path, timeout=1.0, report_every=0.3).acquire()
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    message = str(info.value)
    assert str(path) in message and f"pid {holder.pid}" in message and "holding it for" in message, message
    assert 1.0 <= elapsed < 3, f"the wait should end at its 1 s timeout, took {elapsed:.1f} s"
    assert f"held by pid {holder.pid}" in caplog.text, "a waiter should log whom it waits for while it waits"


def test_a_lock_whose_holder_died_is_free_and_the_stale_record_is_replaced(tmp_path):
    path = tmp_path / "abc.lock"
    holder = hold(path)
    holder.kill()
    holder.wait()
    lock = HolderLock(path, timeout=2)
    stale = lock.holder()
    assert stale is not None and stale.pid == holder.pid and stale.running() is False
    assert "no longer running" in stale.describe()
    with lock:
        assert lock.holder() is not None and lock.holder().pid == os.getpid(), "the new holder records itself"


def test_an_unwritable_lock_directory_is_a_cache_error_naming_it(tmp_path):
    locked = tmp_path / "locks"
    locked.mkdir()
    subprocess.run(["chattr", "+i", str(locked)], check=True)
    try:
        with pytest.raises(CacheError) as info:
            HolderLock(locked / "abc.lock", timeout=1).acquire()
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)
    assert str(locked / "abc.lock") in str(info.value), str(info.value)


def test_a_zero_timeout_tries_once_and_names_the_holder(tmp_path):
    path = tmp_path / "abc.lock"
    holder = hold(path)
    try:
        started = time.monotonic()
        with pytest.raises(CacheError, match=f"held by pid {holder.pid}"):
            HolderLock(path, timeout=60).acquire(timeout=0)
        assert time.monotonic() - started < 1, "timeout=0 should not wait"
    finally:
        holder.kill()
        holder.wait()
