"""The environment a bundle declares: which file, its parse, its warnings and its key (no installs)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from modelops_infra.bundles import PythonTarget, environment_key, find_environment, validate_bundle
from modelops_infra.bundles._envspec import parse_requirements
from modelops_infra.cli import app

PYLOCK = """lock-version = "1.0"
created-by = "test"
requires-python = ">=3.11"
[[packages]]
name = "six"
version = "1.17.0"
"""
UV_LOCK = """version = 1
requires-python = ">=3.11"
[[package]]
name = "demo"
version = "1.0.0"
source = { virtual = "." }
dependencies = [{ name = "six" }]
[[package]]
name = "six"
version = "1.17.0"
source = { registry = "https://pypi.org/simple" }
"""
PYPROJECT = '[project]\nname = "demo"\nversion = "1.0.0"\ndependencies = ["six"]\n'
TARGET = PythonTarget("cpython", "3.11", "linux-x86_64")


def test_requirements_text_is_normalised_so_equivalent_files_give_one_key():
    a, _, pa = parse_requirements("Numpy == 1.26.4\nsix==1.17.0 \\\n   --hash=sha256:bb --hash=sha256:aa\n")
    b, _, pb = parse_requirements("# models\nsix==1.17.0 --hash=sha256:aa --hash=sha256:bb  # tiny\nnumpy==1.26.4\n")
    assert pa == pb == []
    assert a is not None and b is not None
    assert a.text == b.text, f"reordered, re-cased and re-spaced requirements should normalise alike: {a.text!r} vs {b.text!r}"
    assert environment_key(a, TARGET) == environment_key(b, TARGET)


def test_the_key_changes_with_requirements_python_platform_and_wheel_source():
    spec, _, _ = parse_requirements("six==1.17.0\n")
    other, _, _ = parse_requirements("six==1.16.0\n")
    assert spec is not None and other is not None
    base = environment_key(spec, TARGET)
    variants = {
        "requirements": environment_key(other, TARGET),
        "python version": environment_key(spec, PythonTarget("cpython", "3.12", "linux-x86_64")),
        "implementation": environment_key(spec, PythonTarget("pypy", "3.11", "linux-x86_64")),
        "platform": environment_key(spec, PythonTarget("cpython", "3.11", "linux-aarch64")),
        "wheels": environment_key(spec, TARGET, wheels=["sha256:" + "a" * 64]),
    }
    for what, key in variants.items():
        assert key != base, f"changing the {what} must change the environment key"
    assert base.startswith("sha256:") and len(base) == 71


def test_unpinned_requirements_warn_but_are_not_problems(make_bundle):
    root = make_bundle(requirements="numpy>=1.24\nsix==1.17.0\nattrs\n")
    report = validate_bundle(root)
    assert report.ok, f"unpinned requirements must not fail validation: {report.problems}"
    assert len(report.warnings) == 2, f"expected a warning for numpy>=1.24 and attrs, got {report.warnings}"
    assert all("not pinned" in w for w in report.warnings)


def test_two_environment_files_are_refused_naming_both(make_bundle):
    root = make_bundle(requirements="six==1.17.0\n")
    (root / "pylock.toml").write_text(PYLOCK)
    report = validate_bundle(root)
    assert len(report.problems) == 1, report.problems
    assert "pylock.toml and requirements.txt" in report.problems[0]


def test_pylock_is_parsed_and_keyed_from_its_text(make_bundle):
    root = make_bundle()
    (root / "pylock.toml").write_text(PYLOCK)
    spec, problems = find_environment(root)
    assert problems == [] and spec is not None
    assert (spec.kind, spec.source, spec.pins, spec.requires_python) == ("pylock", "pylock.toml", ("six==1.17.0",), ">=3.11")
    assert spec.unpinned == ()


@pytest.mark.parametrize(("text", "needle"), [
    ("lock-version = \n", "not valid TOML"),
    ('lock-version = "1.0"\n', "'packages' must be a non-empty array"),
    ('packages = [{name = "six"}]\n', "missing 'lock-version'"),
])
def test_a_bad_pylock_is_one_problem_naming_the_file(make_bundle, text, needle):
    root = make_bundle()
    (root / "pylock.toml").write_text(text)
    report = validate_bundle(root)
    assert len(report.problems) == 1 and "pylock.toml" in report.problems[0] and needle in report.problems[0], report.problems


def test_uv_lock_needs_its_pyproject(make_bundle):
    root = make_bundle()
    (root / "uv.lock").write_text(UV_LOCK)
    report = validate_bundle(root)
    assert any("needs its pyproject.toml" in p for p in report.problems), report.problems
    (root / "pyproject.toml").write_text(PYPROJECT)
    spec, problems = find_environment(root)
    assert problems == [] and spec is not None
    assert spec.pins == ("six==1.17.0",), "the bundle's own (virtual) project is not a pin"


def test_a_pyproject_alone_is_not_an_environment(make_bundle):
    root = make_bundle()
    (root / "pyproject.toml").write_text(PYPROJECT)
    assert find_environment(root) == (None, [])


def test_validate_cli_prints_warnings_and_still_exits_0(make_bundle):
    root = make_bundle(requirements="numpy>=1.24\n")
    result = CliRunner().invoke(app, ["bundle", "validate", str(root)])
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "numpy>=1.24" in result.output and "not pinned" in result.output
    assert "environment" in result.output and "requirements.txt" in result.output


def test_extras_and_repeated_hashes_normalise_to_one_key():
    a, _, _ = parse_requirements("Foo[B,a]==1.0 --hash=sha256:AA --hash=sha256:aa\n")
    b, _, _ = parse_requirements("foo[b,A]==1.0 --hash=sha256:aa\n")
    assert a is not None and b is not None
    assert a.text == b.text, f"extras case/order and repeated hashes must not change the text: {a.text!r} {b.text!r}"


@pytest.mark.parametrize(("line", "needle"), [
    ("six==1.0 --hash=md5:abc", "hash algorithm 'md5' is not accepted"),
    ("six==1.0 --hash=sha256", "is not --hash=<algorithm>:<hex digest>"),
    ("--hash=sha256:aa", "--hash without a requirement"),
])
def test_bad_hash_options_name_the_line_and_what_is_wrong(line, needle):
    spec, _, problems = parse_requirements(f"numpy==2.0\n{line}\n")
    assert spec is None and len(problems) == 1 and "requirements.txt:2" in problems[0] and needle in problems[0], problems


def test_a_marker_variant_of_a_requirement_is_not_a_duplicate_in_either_order():
    for text in ("foo==2\nfoo==1; python_version<'3.9'\n", "foo==1; python_version<'3.9'\nfoo==2\n"):
        spec, _, problems = parse_requirements(text)
        assert problems == [] and spec is not None, (text, problems)
    _, _, problems = parse_requirements("foo==2\nFoo==3\n")
    assert len(problems) == 1 and "already required on line 1" in problems[0]


def test_a_manylinux_target_accepts_every_older_glibc_and_the_legacy_aliases():
    from modelops_infra.bundles._envbuild import platform_tags

    tags = platform_tags("manylinux_2_28_x86_64")
    assert tags[0] == "manylinux_2_28_x86_64" and tags[-1] == "manylinux1_x86_64"
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux2010_x86_64"} <= set(tags)
    assert "manylinux_2_29_x86_64" not in tags, "a newer glibc than the workers' must not be accepted"
    assert platform_tags("macosx_11_0_arm64") == ["macosx_11_0_arm64"]
