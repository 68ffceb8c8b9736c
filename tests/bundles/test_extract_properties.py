"""Extraction, by property: whatever the archive, nothing is ever created outside the staging root.

Random trees of files, directories, hardlinks and symlinks -- links in the tree,
links that climb out, chains of links that each climb one level -- are
extracted into a root twelve levels below a watched directory. Whether the
extraction succeeds or is refused, the watched directory outside the root is
byte-for-byte what it was, and a refusal is always an UnsafeArchiveError.
"""

from __future__ import annotations

import io
import os
import tarfile
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelops_infra.bundles._extract import ExtractBudget, extract_code_tar
from modelops_infra.errors import UnsafeArchiveError

DEPTH = 12  # deeper than any chain of links in an example can climb
COMPONENTS = st.sampled_from(["a", "b", "c", "l", "..", "."])
REL_PATH = st.lists(COMPONENTS, min_size=1, max_size=4).map("/".join)
LINK_TARGET = st.one_of(REL_PATH, st.just("/tmp"), st.lists(st.just(".."), min_size=1, max_size=6).map("/".join))
MEMBER = st.one_of(
    st.tuples(st.just("file"), REL_PATH, st.just("")),
    st.tuples(st.just("dir"), REL_PATH, st.just("")),
    st.tuples(st.just("symlink"), REL_PATH, LINK_TARGET),
    st.tuples(st.just("hardlink"), REL_PATH, REL_PATH),
)
KINDS = {"file": tarfile.REGTYPE, "dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE}


def archive(members: list[tuple[str, str, str]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for kind, name, linkname in members:
            info = tarfile.TarInfo(name)
            info.type, info.linkname, info.mode = KINDS[kind], linkname, 0o755 if kind == "dir" else 0o644
            data = b"x" * (len(name) % 5) if kind == "file" else b""
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)
    buf.seek(0)
    return buf


def listing(base: Path, skip: Path) -> dict[str, tuple[int, int, str]]:
    """Every path under ``base`` except inside ``skip``: (mode, size, link target), links not followed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if Path(dirpath, d) != skip]
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            st_ = full.lstat()
            out[str(full)] = (st_.st_mode, st_.st_size, os.readlink(full) if full.is_symlink() else "")
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(MEMBER, min_size=1, max_size=14))
def test_extraction_never_creates_anything_outside_the_staging_root(members):
    with tempfile.TemporaryDirectory(prefix="modelops-extract-") as tmp:
        base = Path(tmp)
        (base / "sibling").mkdir()
        (base / "sibling" / "keep.txt").write_text("keep")
        root = base.joinpath(*[f"d{i}" for i in range(DEPTH)], "tree")
        root.mkdir(parents=True)
        before = listing(base, root)
        try:
            extract_code_tar(archive(members), root, ExtractBudget(1 << 20))
        except UnsafeArchiveError:
            refused = True
        else:
            refused = False
        after = listing(base, root)
        assert after == before, (f"extraction of {members} ({'refused' if refused else 'accepted'}) changed"
                                 f" things outside the root: {sorted(set(after) ^ set(before))}")
        if not refused:
            real_root = os.path.realpath(root)
            for dirpath, dirnames, filenames in os.walk(root):
                for name in dirnames + filenames:
                    full = os.path.join(dirpath, name)
                    if os.path.islink(full) and os.path.exists(full):
                        assert os.path.realpath(full).startswith(real_root + os.sep) or \
                            os.path.realpath(full) == real_root, f"{full} leads out of the tree in {members}"
