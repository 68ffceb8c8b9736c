"""Static validation of a bundle directory: every problem is listed, and nothing in the bundle runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelops_infra.bundles import list_bundle_files, parse_requirements, require_valid_bundle, validate_bundle
from modelops_infra.errors import BundleValidationError


def write_manifest(root: Path, data: object) -> None:
    (root / "manifest.json").write_text(data if isinstance(data, str) else json.dumps(data))


def problems_of(root: Path) -> list[str]:
    return validate_bundle(root).problems


def assert_one_problem_mentions(problems: list[str], *needles: str) -> None:
    assert any(all(n in p for n in needles) for p in problems), (
        f"expected a problem mentioning {needles}; got: {problems}"
    )


def test_a_well_formed_bundle_validates_with_no_problems(make_bundle):
    root = make_bundle("good", requirements="numpy>=1.20\n# comment\n\nscipy ; python_version > '3.8'  # why\n")
    report = validate_bundle(root)
    assert report.ok, f"expected no problems, got {report.problems}"
    assert report.manifest is not None and report.manifest.entrypoint == "sim:run"


def test_a_missing_manifest_is_reported(tmp_path):
    (tmp_path / "sim.py").write_text("def run(params, seed): return {}\n")
    assert_one_problem_mentions(problems_of(tmp_path), "manifest.json", "missing")


def test_a_path_that_is_not_a_directory_is_reported(tmp_path):
    assert_one_problem_mentions(problems_of(tmp_path / "nope"), "not a directory")


@pytest.mark.parametrize("raw", [b"{not json", b"", b"{'single': 'quotes'}", b"\xff\xfe{}"])
def test_a_manifest_that_is_not_json_is_reported(make_bundle, raw):
    root = make_bundle()
    (root / "manifest.json").write_bytes(raw)
    assert_one_problem_mentions(problems_of(root), "manifest.json", "not valid JSON")


def test_a_manifest_that_is_not_an_object_is_reported(make_bundle):
    root = make_bundle()
    write_manifest(root, ["name", "version"])
    assert_one_problem_mentions(problems_of(root), "manifest.json", "JSON object")


def test_every_missing_field_is_reported_at_once(make_bundle):
    root = make_bundle()
    write_manifest(root, {"description": "only a description"})
    problems = problems_of(root)
    for field in ("name", "version", "entrypoint"):
        assert_one_problem_mentions(problems, f"missing required field '{field}'")
    assert len(problems) == 3, f"expected exactly the three missing fields, got {problems}"


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", ""), ("name", "has space"), ("name", 7), ("version", "-1"), ("version", ["1"]),
     ("entrypoint", "sim"), ("entrypoint", "sim:"), ("entrypoint", "sim.run"), ("entrypoint", "1sim:run"),
     ("entrypoint", "sim:run:again"), ("entrypoint", "sim/mod:run")],
)
def test_a_malformed_field_is_reported_with_its_value(make_bundle, field, value):
    root = make_bundle()
    data = {"name": "demo", "version": "1.0.0", "entrypoint": "sim:run", field: value}
    write_manifest(root, data)
    assert_one_problem_mentions(problems_of(root), f"field '{field}'", repr(value))


def test_description_must_be_a_string_and_unknown_fields_are_reported(make_bundle):
    root = make_bundle()
    write_manifest(root, {"name": "demo", "version": "1", "entrypoint": "sim:run", "description": 3, "extra": 1})
    problems = problems_of(root)
    assert_one_problem_mentions(problems, "'description'", "string")
    assert_one_problem_mentions(problems, "unknown field 'extra'")


def test_a_missing_entry_module_is_reported_naming_both_candidate_files(make_bundle):
    root = make_bundle(entrypoint="models.sir:run")
    assert_one_problem_mentions(problems_of(root), "models.sir", "models/sir.py", "models/sir/__init__.py")


def test_an_entry_module_in_a_package_is_found(make_bundle):
    root = make_bundle(files={"models/sir.py": "def run(params, seed):\n    return {}\n",
                              "pkg/__init__.py": "def go(params, seed):\n    return {}\n"},
                       entrypoint="models.sir:run")
    assert validate_bundle(root).ok
    write_manifest(root, {"name": "demo", "version": "1", "entrypoint": "pkg:go"})
    assert validate_bundle(root).ok, "a package's __init__.py should serve as the entry module"


def test_an_entry_function_that_is_not_defined_is_reported(make_bundle):
    root = make_bundle(files={"sim.py": "def other(params, seed):\n    return {}\n"})
    assert_one_problem_mentions(problems_of(root), "sim.py", "does not define function 'run'")


def test_a_function_nested_in_a_class_does_not_count_as_the_entry_function(make_bundle):
    root = make_bundle(files={"sim.py": "class Model:\n    def run(self, params, seed):\n        return {}\n"})
    assert_one_problem_mentions(problems_of(root), "does not define function 'run'")


def test_entry_functions_bound_by_assignment_or_import_are_accepted(make_bundle):
    root = make_bundle(files={"sim.py": "from helpers import simulate as run\n", "helpers.py": "def simulate(p, s): return {}\n"})
    assert validate_bundle(root).ok, problems_of(root)
    (root / "sim.py").write_text("def _impl(params, seed):\n    return {}\nrun = _impl\n")
    assert validate_bundle(root).ok, problems_of(root)


def test_validation_parses_the_entry_module_without_running_it(make_bundle, tmp_path):
    marker = tmp_path / "ran"
    root = make_bundle(files={"sim.py": f"""
        open({str(marker)!r}, "w").write("imported")
        raise RuntimeError("importing this module fails")

        def run(params, seed):
            return {{}}
    """})
    report = validate_bundle(root)
    assert report.ok, f"a module that raises at import should still validate; got {report.problems}"
    assert not marker.exists(), "validation must not execute the entry module"


def test_an_entry_module_with_a_syntax_error_is_reported(make_bundle):
    root = make_bundle(files={"sim.py": "def run(params, seed)\n    return {}\n"})
    assert_one_problem_mentions(problems_of(root), "sim.py", "cannot be parsed")


@pytest.mark.parametrize(
    ("line", "needle"),
    [("numpy>=", "invalid requirement 'numpy>='"), ("not a requirement!", "invalid requirement"),
     ("-e .", "option '-e' is not allowed"), ("--index-url https://pypi.example", "'--index-url'"),
     ("numpy ==1.0 ; python_version >>> '3'", "invalid requirement")],
)
def test_each_bad_requirements_line_is_reported_with_its_line_number(make_bundle, line, needle):
    root = make_bundle(requirements=f"numpy>=1.0\n\n{line}\n")
    assert_one_problem_mentions(problems_of(root), "requirements.txt:3", needle)


def test_parse_requirements_skips_comments_and_keeps_markers():
    _, reqs, problems = parse_requirements("# top\npandas>=2  # inline\n\nattrs[tests]==23.1 ; python_version>'3.8'\n")
    assert problems == []
    assert [str(r) for r in reqs] == ["pandas>=2", 'attrs[tests]==23.1; python_version > "3.8"']


def test_every_problem_is_listed_and_require_valid_bundle_raises_with_all_of_them(make_bundle):
    root = make_bundle(files={"sim.py": "def other(p, s): return {}\n"}, requirements="ok-dist\n???\n-r more.txt\n")
    (root / ".bundleignore").write_text("data/\n!data/keep.csv\n")
    problems = problems_of(root)
    assert len(problems) == 4, f"expected the entry function, two requirement lines and the negation; got {problems}"
    with pytest.raises(BundleValidationError) as info:
        require_valid_bundle(root)
    assert info.value.problems == problems
    assert "4 problems" in str(info.value) and all(p in str(info.value) for p in problems)


# -- ignore rules ------------------------------------------------------------------------------


def test_vcs_caches_and_virtualenvs_are_never_packed(make_bundle):
    root = make_bundle(files={
        "sim.py": "def run(p, s): return {}\n",
        ".git/HEAD": "ref: refs/heads/main\n",
        "__pycache__/sim.cpython-311.pyc": b"\0",
        "pkg/__pycache__/x.pyc": b"\0",
        "pkg/mod.py": "",
        "stray.pyc": b"\0",
        ".venv/bin/python": "",
        "pkg/.git/config": "",
        ".gitignore": "*.log\n",
    })
    assert list_bundle_files(root) == [".gitignore", "manifest.json", "pkg/mod.py", "sim.py"]


def test_bundleignore_patterns_exclude_files_and_directories(make_bundle):
    root = make_bundle(files={
        "sim.py": "def run(p, s): return {}\n",
        ".bundleignore": "# scratch output\n*.log\ndata/raw/\n/top.txt\n**/tmp\nnotes/*.md\n",
        "run.log": "", "logs/deep/run.log": "",
        "data/raw/a.csv": "", "data/clean.csv": "", "raw/kept.csv": "",
        "top.txt": "", "sub/top.txt": "",
        "a/b/tmp/x": "", "tmp/y": "",
        "notes/a.md": "", "notes/deeper/b.md": "",
    })
    assert list_bundle_files(root) == [
        ".bundleignore", "data/clean.csv", "manifest.json", "notes/deeper/b.md", "raw/kept.csv", "sim.py", "sub/top.txt",
    ]


def test_a_directory_only_pattern_does_not_exclude_a_file_of_that_name(make_bundle):
    root = make_bundle(files={"sim.py": "def run(p, s): return {}\n", ".bundleignore": "build/\n", "build": "a file"})
    assert "build" in list_bundle_files(root)
