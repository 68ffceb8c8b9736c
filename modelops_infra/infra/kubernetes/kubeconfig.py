"""Read the kubeconfig a ``kubernetes`` stack is given: a path or the content, and an optional context.

Pure apart from reading the named file. The result is one self-contained
kubeconfig text whose ``current-context`` is the chosen context, so the
Kubernetes provider and the smoke test's port-forward reach the same cluster
as the same user.

The value is secret. No error here quotes it, names the file, or carries the
file system's or YAML parser's exception (which quote the path or the
offending line), neither as cause nor as context: errors name the config key,
and the line and column where that helps.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from modelops_infra.errors import ConfigurationError

__all__ = ["KUBECONFIG_KEY", "CONTEXT_KEY", "resolve_kubeconfig"]

KUBECONFIG_KEY = "modelops:kubeconfig"
CONTEXT_KEY = "modelops:kubernetes.context"

#: Fields that may name files; kubectl resolves relative ones against the kubeconfig's directory.
_FILE_FIELDS = {
    "clusters": ("cluster", ("certificate-authority",)),
    "users": ("user", ("client-certificate", "client-key", "tokenFile")),
}


def _looks_like_content(value: str) -> bool:
    stripped = value.lstrip()
    return "\n" in value or stripped.startswith(("{", "apiVersion", "kind:", "clusters:", "---"))


def resolve_kubeconfig(value: str, *, context: str | None = None, base_dir: Path | None = None) -> str:
    """The kubeconfig text to deploy with: ``value``'s, with ``current-context`` set to ``context``.

    ``value`` is the content of a kubeconfig, or the path of one (``~``
    expanded; relative to ``base_dir``, default the working directory, which
    is the project directory under ``pulumi``). From a file, relative file
    references inside it are made absolute. ``context=None`` keeps the file's
    ``current-context``. Given content whose current context is already the
    chosen one comes back unchanged, so an unchanged config never shows a diff.

    Raises :class:`ConfigurationError` naming ``modelops:kubeconfig`` when the
    value is neither readable YAML nor a readable file, or is not a kubeconfig;
    naming ``modelops:kubernetes.context`` when the context is missing (the
    error lists the contexts there are).
    """
    from_file: Path | None = None
    if _looks_like_content(value):
        text = value
    else:
        path = Path(os.path.expanduser(value.strip()))
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        read = _read(path)
        if read is None:
            # Not named: the path is part of a secret value.
            raise ConfigurationError(
                f"{KUBECONFIG_KEY}: is neither kubeconfig content nor the path of a readable file",
                hint="give the path of a kubeconfig file, or its content (the value is secret and not shown)",
                key=KUBECONFIG_KEY,
            )
        text, from_file = read, path

    document = _load(text)
    contexts = [c.get("name") for c in document.get("contexts") or [] if isinstance(c, Mapping)]
    current = document.get("current-context") or None
    chosen = context or current
    if not chosen:
        raise ConfigurationError(
            f"{CONTEXT_KEY}: the kubeconfig has no current-context, so a context must be named",
            hint=f"contexts in it: {', '.join(map(str, contexts)) or 'none'}",
            key=CONTEXT_KEY,
        )
    if chosen not in contexts:
        where = CONTEXT_KEY if context else KUBECONFIG_KEY
        raise ConfigurationError(
            f"{where}: the kubeconfig has no context {chosen!r}",
            hint=f"contexts in it: {', '.join(map(str, contexts)) or 'none'}",
            key=where,
        )
    if from_file is None and chosen == current:
        return text
    document["current-context"] = chosen
    if from_file is not None:
        _absolutise_files(document, from_file.parent)
    return yaml.safe_dump(document, sort_keys=False)


def _read(path: Path) -> str | None:
    """The file's text, or ``None``; the OSError is dropped because its message names the (secret) path."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _load(text: str) -> dict[str, Any]:
    # The parser's exception quotes the secret text, so it is neither chained
    # nor left as the implicit context: only its position is kept.
    where: str | None = None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    if where is not None:
        raise ConfigurationError(f"{KUBECONFIG_KEY}: is not valid YAML{where}", key=KUBECONFIG_KEY)
    if not isinstance(document, dict) or not isinstance(document.get("clusters"), list):
        raise ConfigurationError(
            f"{KUBECONFIG_KEY}: is not a kubeconfig (no clusters list)",
            hint="`kubectl config view --raw --minify` prints one",
            key=KUBECONFIG_KEY,
        )
    return document


def _absolutise_files(document: dict[str, Any], directory: Path) -> None:
    for section, (inner, fields) in _FILE_FIELDS.items():
        for entry in document.get(section) or []:
            body = entry.get(inner) if isinstance(entry, Mapping) else None
            if not isinstance(body, dict):
                continue
            for name in fields:
                ref = body.get(name)
                if isinstance(ref, str) and ref and not Path(ref).is_absolute():
                    body[name] = str(directory / ref)
