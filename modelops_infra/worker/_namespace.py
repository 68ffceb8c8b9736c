"""Import a bundle's entrypoint in a namespace private to that bundle.

Two bundles may both ship a ``simulate.py``. Each bundle's modules are imported
with the bundle directory first on ``sys.path``; afterwards every module that
came from the bundle is taken *out* of ``sys.modules`` (and whatever was there
before is put back), so the next bundle imports its own ``simulate`` afresh.
The entry function keeps references to its own modules through its globals.

Contract: a bundle imports its sibling modules at module level (the usual
style). A sibling imported lazily inside a function at call time is resolved
against ``sys.modules`` at that moment and is not isolated.
"""

from __future__ import annotations

import importlib
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelops_infra.bundles import parse_entrypoint
from modelops_infra.errors import BundleRunError

__all__ = ["load_entrypoint"]

# importlib has its own per-module locks; this one makes the sys.path/sys.modules
# swap below atomic with respect to other bundle loads in this process.
_SWAP_LOCK = threading.RLock()


def _top_level_names(root: Path) -> set[str]:
    names = set()
    for child in root.iterdir():
        if child.suffix == ".py":
            names.add(child.stem)
        elif child.is_dir() and child.name.isidentifier():
            names.add(child.name)
    return names


def load_entrypoint(root: Path, digest: str, fn_ref: str) -> Callable[[dict[str, Any], int], Any]:
    """Import ``fn_ref`` (``module:function``) from the bundle at ``root``; raise :class:`BundleRunError`."""
    parsed = parse_entrypoint(fn_ref)
    if parsed is None:
        raise BundleRunError(f"run: entrypoint {fn_ref!r} is not 'module:function'", digest=digest)
    module_name, func_name = parsed
    mine = _top_level_names(root)
    with _SWAP_LOCK:
        saved = {n: m for n, m in sys.modules.items() if n.split(".", 1)[0] in mine}
        for name in saved:
            del sys.modules[name]
        sys.path.insert(0, str(root))
        importlib.invalidate_caches()
        try:
            module = importlib.import_module(module_name)
        except BaseException as exc:
            import traceback

            tb = traceback.format_exc()
            raise BundleRunError(
                f"run: importing {module_name!r} from bundle {digest} failed: {type(exc).__name__}: {exc}\n{tb}",
                remote_traceback=tb, digest=digest,
            ) from None
        finally:
            sys.path.remove(str(root))
            for name in [n for n in sys.modules if n.split(".", 1)[0] in mine]:
                del sys.modules[name]
            sys.modules.update(saved)
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise BundleRunError(f"run: bundle {digest} module {module_name!r} has no function {func_name!r}", digest=digest)
    return fn
