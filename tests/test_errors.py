"""``ModelOpsError``: the stage is a field, kept through pickling, and rendered only on request."""

from __future__ import annotations

import pickle

from modelops_infra.errors import BundleValidationError, ImageBuildError, SmokeTestError


def test_the_stage_is_data_and_str_does_not_show_it() -> None:
    err = SmokeTestError("registry r:1 unreachable", stage="push", hint="start the registry")
    assert err.stage == "push" and err.message == "registry r:1 unreachable"
    assert str(err) == "registry r:1 unreachable (hint: start the registry)"
    assert err.render() == "push: registry r:1 unreachable (hint: start the registry)"
    assert err.render("registry r:1") == "push: registry r:1 (hint: start the registry)", "a shortened message"


def test_stage_hint_and_attributes_survive_pickling_as_dask_ships_them() -> None:
    err = ImageBuildError("base image x: no amd64", stage="base", hint="pick another", input="base_image")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is ImageBuildError
    assert (copy.message, copy.stage, copy.hint, copy.input) == ("base image x: no amd64", "base", "pick another",
                                                                 "base_image")
    problems = pickle.loads(pickle.dumps(BundleValidationError("bad", problems=["a"], stage="pack")))
    assert (problems.problems, problems.stage) == (["a"], "pack")


def test_the_rendered_copy_for_the_engine_shows_the_stage_once() -> None:
    err = SmokeTestError("no worker within 5 s", stage="workers", bundle_ref="r@sha256:1")
    copy = err.rendered()
    assert type(copy) is SmokeTestError and copy.bundle_ref == "r@sha256:1"
    assert str(copy) == "workers: no worker within 5 s" == copy.render(), "rendering the copy again adds nothing"
    assert (copy.stage, copy.hint) == (None, None)


def test_an_error_without_a_stage_renders_as_its_message() -> None:
    assert SmokeTestError("boom").render() == "boom"
