"""The child side of :mod:`modelops_infra.worker._pool`: runs one bundle's code in its own interpreter.

STANDARD LIBRARY ONLY. This file runs under a bundle environment's interpreter,
where modelops_infra is not installed, so it imports nothing of ours. It stays
compatible with Python 3.8 for the same reason (no ``match``, no runtime ``X | Y``).

Launched by the pool as::

    [python, "-I", "/abs/path/_child.py", READ_FD, WRITE_FD, BUNDLE_ROOT]   # cwd = BUNDLE_ROOT

Protocol, both directions on the two dedicated pipe fds: frames of a 4-byte
big-endian length followed by that many bytes of UTF-8 JSON.

* child -> parent, once: ``{"ready": true, "pid": int, "python": sys.version}``
* parent -> child: ``{"entrypoint": "module:function", "params": {...}, "seed": int}``
* child -> parent: ``{"ok": true, "result": {...}}`` or
  ``{"ok": false, "stage": "load"|"raise"|"result", "type": str, "message": str, "traceback": str}``
* parent -> child ``{"exit": true}``, or EOF on READ_FD: the child exits with status 0.

A malformed or oversized frame makes the child exit with status 2; the parent
sees that as a dead child. fd 1 is pointed at fd 2 before any bundle code runs,
so ``print`` in a bundle goes to the worker's log and never into the protocol.
"""

from __future__ import annotations

import importlib
import json
import os
import struct
import sys
import traceback
from typing import Any, Callable, Dict, Optional

__all__ = ["HEADER", "MAX_FRAME", "decode_body", "encode_frame", "main"]

#: Largest frame either side accepts or sends (a result bigger than this is a "result" error).
MAX_FRAME = 256 * 1024 * 1024
HEADER = struct.Struct(">I")
EXIT_MALFORMED = 2
_MAX_TEXT = 64 * 1024

EntryFn = Callable[[Dict[str, Any], int], Any]


class FrameError(Exception):
    """A frame that cannot be decoded: too large, cut short, not UTF-8 JSON, or not an object."""


def encode_frame(obj: Dict[str, Any]) -> bytes:
    """Header plus JSON body. Raises ``TypeError``/``ValueError`` for non-JSON data, ``FrameError`` if too large."""
    body = json.dumps(obj, separators=(",", ":")).encode("utf-8")
    if len(body) > MAX_FRAME:
        raise FrameError("frame of {} bytes exceeds the limit of {} bytes".format(len(body), MAX_FRAME))
    return HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> Dict[str, Any]:
    """The JSON object in a frame body; raises ``FrameError`` for anything else."""
    try:
        obj = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise FrameError("frame is not UTF-8 JSON: {}".format(exc)) from exc
    if not isinstance(obj, dict):
        raise FrameError("frame holds {}, not a JSON object".format(type(obj).__name__))
    return obj


def _read_exact(fd: int, size: int) -> bytes:
    chunks = []
    remaining = size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_frame(fd: int) -> Optional[Dict[str, Any]]:
    """The next request, or ``None`` on EOF between frames. ``FrameError`` on anything malformed."""
    try:
        header = _read_exact(fd, HEADER.size)
    except EOFError:
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_FRAME:
        raise FrameError("frame of {} bytes exceeds the limit of {} bytes".format(size, MAX_FRAME))
    try:
        body = _read_exact(fd, size)
    except EOFError:
        raise FrameError("frame cut short by EOF") from None
    return decode_body(body)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _failure(stage: str, exc: BaseException, tb: str) -> Dict[str, Any]:
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not take the child down
        message = "<unprintable {}>".format(type(exc).__name__)
    # bounded, so that the error report itself always fits in a frame
    return {"ok": False, "stage": stage, "type": type(exc).__name__,
            "message": message[:_MAX_TEXT], "traceback": tb[-_MAX_TEXT:]}


def _bundle_traceback(exc: BaseException) -> str:
    """The formatted exception, without the leading frames of this file and of importlib."""
    tb = exc.__traceback__
    while tb is not None and _is_machinery(tb.tb_frame.f_code.co_filename):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _is_machinery(filename: str) -> bool:
    return filename in (__file__, importlib.__file__) or filename.startswith("<frozen importlib")


class EntrypointError(Exception):
    """The entrypoint string is malformed or names no function (reported without a traceback)."""


def _load(entrypoint: str) -> EntryFn:
    module_name, sep, func_name = entrypoint.partition(":")
    if not sep or not func_name.isidentifier() or not all(p.isidentifier() for p in module_name.split(".")):
        raise EntrypointError("entrypoint {!r} is not 'module:function'".format(entrypoint))
    module = importlib.import_module(module_name)
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise EntrypointError("module {!r} has no function {!r}".format(module_name, func_name))
    return fn  # type: ignore[no-any-return]


def _handle(request: Dict[str, Any], entries: Dict[str, EntryFn]) -> bytes:
    """Run one request and return the response frame. Never raises for anything the bundle does."""
    entrypoint = request.get("entrypoint")
    if not isinstance(entrypoint, str):
        return encode_frame({"ok": False, "stage": "load", "type": "ValueError",
                             "message": "request has no 'entrypoint' string", "traceback": ""})
    fn = entries.get(entrypoint)
    if fn is None:
        try:
            fn = _load(entrypoint)
        except EntrypointError as exc:
            return encode_frame(_failure("load", exc, ""))
        except BaseException as exc:  # SystemExit or anything else raised while importing bundle code
            return encode_frame(_failure("load", exc, _bundle_traceback(exc)))
        entries[entrypoint] = fn
    try:
        result = fn(request.get("params") or {}, request.get("seed", 0))
    except (Exception, SystemExit) as exc:  # sys.exit() in a task is reported, not fatal
        return encode_frame(_failure("raise", exc, _bundle_traceback(exc)))
    if not isinstance(result, dict):
        return encode_frame({"ok": False, "stage": "result", "type": "TypeError", "traceback": "",
                             "message": "returned {}, expected a JSON-serializable dict".format(type(result).__name__)})
    try:
        return encode_frame({"ok": True, "result": result})
    except FrameError as exc:
        return encode_frame({"ok": False, "stage": "result", "type": "FrameError", "traceback": "",
                             "message": "returned a dict too large to send back ({})".format(exc)})
    except (TypeError, ValueError, RecursionError) as exc:
        return encode_frame({"ok": False, "stage": "result", "type": type(exc).__name__, "traceback": "",
                             "message": "returned a dict that is not JSON-serializable ({})".format(exc)})


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass


def main(argv: list[str]) -> int:
    """Serve requests until EOF or ``{"exit": true}``; returns the exit status."""
    read_fd, write_fd, root = int(argv[1]), int(argv[2]), argv[3]
    os.dup2(2, 1)  # bundle prints go to stderr: the protocol owns only read_fd/write_fd
    if sys.stdout is not None:
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    # Programs the bundle execs must not hold our pipe (the parent would miss our EOF).
    os.set_inheritable(read_fd, False)
    os.set_inheritable(write_fd, False)
    # -I already ignores PYTHON* variables and the user site; also keep the
    # digest-verified bundle tree free of __pycache__ (it may be read-only).
    sys.dont_write_bytecode = True
    sys.path.insert(0, root)
    entries: Dict[str, EntryFn] = {}
    try:
        _write_all(write_fd, encode_frame({"ready": True, "pid": os.getpid(), "python": sys.version}))
        while True:
            try:
                request = _read_frame(read_fd)
            except FrameError as exc:
                sys.stderr.write("modelops child {}: malformed request, exiting: {}\n".format(os.getpid(), exc))
                return EXIT_MALFORMED
            if request is None or request.get("exit"):
                return 0
            response = _handle(request, entries)
            _flush_std()
            _write_all(write_fd, response)
    except BrokenPipeError:
        return 0  # the parent went away
    finally:
        _flush_std()


if __name__ == "__main__":
    # os._exit: a non-daemon thread left by bundle code must not keep an orphan alive.
    os._exit(main(sys.argv))
