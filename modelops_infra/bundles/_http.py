"""HTTP plumbing shared by the registry client and its auth strategies (pure helpers over ``requests``).

* :func:`send` -- one request through the session's transport adapter, no
  redirect following (``Session.send`` reads a redirect's whole body, even
  with ``allow_redirects=False``, so a hostile 3xx could grow without bound);
* :func:`origin` -- the ``(scheme, host, port)`` a URL talks to; credentials go
  only to the registry's own origin.
* :func:`read_capped` -- read a response body into memory up to a cap, so an
  endless or huge body fails fast instead of growing without bound.
* :func:`redact` -- a URL fit for a log line: no query string (upload state,
  signed storage URLs) and no userinfo.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.cookies import extract_cookies_to_jar

__all__ = ["MAX_SMALL_BODY", "origin", "read_capped", "redact", "send"]

#: Cap for bodies the client reads whole but does not otherwise bound: ``/v2/``, error
#: bodies, token responses, upload replies.
MAX_SMALL_BODY = 1024 * 1024
_DEFAULT_PORTS = {"http": 80, "https": 443}
_READ = 64 * 1024


def send(session: requests.Session, method: str, url: str, *, timeout: tuple[float, float],
         headers: Mapping[str, str] | None = None, data: Any = None, params: Mapping[str, str] | None = None
         ) -> requests.Response:
    """Send one request with ``session``'s settings (headers, proxies, TLS, adapters) and stream the answer.

    Redirects are returned, not followed, and their bodies are not read: the
    caller decides where to go next and what credentials go there.
    """
    prep = session.prepare_request(requests.Request(method, url, headers=dict(headers or {}), data=data,
                                                    params=dict(params or {})))
    target = prep.url or url
    env = session.merge_environment_settings(target, {}, True, None, None)
    resp = session.get_adapter(target).send(prep, timeout=timeout, **env)
    extract_cookies_to_jar(session.cookies, prep, resp.raw)
    return resp


def origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, lowercase host, port)`` of ``url``, with the scheme's default port filled in.

    >>> origin("https://Reg.Example/v2/") == origin("https://reg.example:443/x")
    True
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:
        port = -1  # an out-of-range port never matches a registry's origin
    return scheme, (parts.hostname or "").lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def redact(url: str) -> str:
    """``url`` without userinfo and query (``?...`` becomes ``?…``), for log lines and errors."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{parts.path}" + ("?…" if parts.query else "")


def read_capped(resp: requests.Response, cap: int) -> bytes | None:
    """The body of ``resp`` (decoded), or ``None`` if it is longer than ``cap`` bytes.

    Reads at most ``cap + 64 KiB`` and then closes the response; a body read to
    its end leaves the connection reusable. Raises ``requests.RequestException``
    on I/O errors, for the caller to translate.
    """
    chunks: list[bytes] = []
    total = 0
    with resp:
        for chunk in resp.iter_content(_READ):
            total += len(chunk)
            if total > cap:
                return None
            chunks.append(chunk)
    return b"".join(chunks)
