"""Import a bundle's entrypoint in a namespace private to that bundle's digest.

Every bundle's modules live under their own top-level package,
``_modelops_bundle_<digest hex[:20]>``, whose ``__path__`` is the bundle directory.
So two bundles that both ship ``simulate.py`` or ``helpers.py`` get
``_modelops_bundle_aaaa….simulate`` and ``_modelops_bundle_bbbb….simulate``:
distinct modules that can be loaded side by side and stay loaded.

Bundle code keeps writing ordinary absolute imports (``import helpers``,
``from model.params import X``). Each bundle module gets its own ``__builtins__``
whose ``__import__`` maps the bundle's own top-level names into its package;
every other import (``numpy``, ``json``) goes to the normal import system. This
holds for imports at call time too (a sibling imported inside a function), with
no global state swapped and no lock held while tasks run.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.abc
import importlib.machinery
import sys
import threading
import traceback
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from modelops_infra.bundles import digest_hex, parse_entrypoint
from modelops_infra.errors import BundleRunError

__all__ = ["load_entrypoint", "package_name"]

_PREFIX = "_modelops_bundle_"
_lock = threading.Lock()


def package_name(digest: str) -> str:
    """The private top-level package of the bundle with ``digest`` (pure)."""
    return _PREFIX + digest_hex(digest)[:20]


def _top_level_names(root: Path) -> frozenset[str]:
    names = set()
    for child in root.iterdir():
        if child.suffix == ".py" and child.stem.isidentifier():
            names.add(child.stem)
        elif child.is_dir() and child.name.isidentifier():
            names.add(child.name)
    return frozenset(names)


def _bundle_builtins(package: str, own: frozenset[str]) -> dict[str, Any]:
    """A builtins mapping whose ``__import__`` sends the bundle's own names into ``package``."""
    real_import = builtins.__import__

    def bundle_import(name: str, globals: Any = None, locals: Any = None,
                      fromlist: Sequence[str] = (), level: int = 0) -> types.ModuleType:
        if level == 0 and name.split(".", 1)[0] in own:
            module = real_import(f"{package}.{name}", globals, locals, fromlist, 0)
            if fromlist:
                return module
            # ``import a.b`` binds ``a``: hand back the bundle's ``a``, not the private package
            return sys.modules[f"{package}.{name.split('.', 1)[0]}"]
        return real_import(name, globals, locals, fromlist, level)

    mapping = dict(builtins.__dict__)
    mapping["__import__"] = bundle_import
    return mapping


class _BundleLoader(importlib.abc.Loader):
    """Wraps the file loader of a bundle module to give it the bundle's builtins."""

    def __init__(self, inner: importlib.abc.Loader, bundle_builtins: dict[str, Any]) -> None:
        self._inner = inner
        self._builtins = bundle_builtins

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._inner.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        module.__dict__["__builtins__"] = self._builtins
        self._inner.exec_module(module)


class _BundleFinder(importlib.abc.MetaPathFinder):
    """Finds ``_modelops_bundle_<hex>.*`` modules inside their bundle directory."""

    def __init__(self) -> None:
        self.builtins_for: dict[str, dict[str, Any]] = {}

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None,
                  ) -> importlib.machinery.ModuleSpec | None:
        package = fullname.split(".", 1)[0]
        if "." not in fullname or package not in self.builtins_for:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return None
        spec.loader = _BundleLoader(spec.loader, self.builtins_for[package])
        return spec


_finder = _BundleFinder()


def _ensure_package(root: Path, package: str) -> None:
    with _lock:
        if package in sys.modules:
            return
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
        _finder.builtins_for[package] = _bundle_builtins(package, _top_level_names(root))
        module = types.ModuleType(package, f"modelops bundle at {root}")
        module.__path__ = [str(root)]
        module.__package__ = package
        sys.modules[package] = module


def load_entrypoint(root: Path, digest: str, fn_ref: str) -> Callable[[dict[str, Any], int], Any]:
    """Import ``fn_ref`` (``module:function``) from the bundle at ``root``; raise :class:`BundleRunError`.

    Idempotent: the bundle's modules are imported once per process and reused.
    """
    parsed = parse_entrypoint(fn_ref)
    if parsed is None:
        raise BundleRunError(f"entrypoint {fn_ref!r} is not 'module:function'", stage="run", digest=digest)
    module_name, func_name = parsed
    package = package_name(digest)
    _ensure_package(root, package)
    try:
        module = importlib.import_module(f"{package}.{module_name}")
    except BaseException as exc:
        tb = traceback.format_exc()
        raise BundleRunError(
            f"importing {module_name!r} from bundle {digest} failed: {type(exc).__name__}: {exc}\n{tb}",
            stage="run", remote_traceback=tb, digest=digest,
        ) from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise BundleRunError(f"bundle {digest} module {module_name!r} has no function {func_name!r}", stage="run", digest=digest)
    entry: Callable[[dict[str, Any], int], Any] = fn
    return entry
