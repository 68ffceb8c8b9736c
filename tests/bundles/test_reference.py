"""Bundle references: ``[registry/]repository[:tag|@sha256:<hex>]`` parse, print back, and name what is wrong."""

from __future__ import annotations

import pytest

from modelops_infra.bundles import Reference
from modelops_infra.errors import ReferenceError_

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("modelops/bundles", None, "modelops/bundles", None, None),
        ("modelops/bundles:v1.2", None, "modelops/bundles", "v1.2", None),
        (f"modelops/bundles@{DIGEST}", None, "modelops/bundles", None, DIGEST),
        ("127.0.0.1:5000/modelops/bundles:latest", "127.0.0.1:5000", "modelops/bundles", "latest", None),
        ("localhost/sir", "localhost", "sir", None, None),
        (f"myreg.azurecr.io/team/sir-model:2024_01@{DIGEST}", "myreg.azurecr.io", "team/sir-model", "2024_01", DIGEST),
        ("[::1]:5000/a/b", "[::1]:5000", "a/b", None, None),
    ],
)
def test_reference_parses_into_parts_and_prints_back_unchanged(text, registry, repository, tag, digest):
    ref = Reference.parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest), (
        f"{text!r} should parse as registry={registry!r} repository={repository!r} tag={tag!r} digest={digest!r}"
    )
    assert str(ref) == text, f"str(parse({text!r})) should round-trip, got {str(ref)!r}"
    assert Reference.parse(str(ref)) == ref, "parsing the printed form should give the same reference"


def test_default_registry_fills_in_only_when_the_reference_names_none():
    assert Reference.parse("a/b:t", default_registry="reg.example:5000").registry == "reg.example:5000"
    assert Reference.parse("other.example/a/b", default_registry="reg.example:5000").registry == "other.example"


def test_a_reference_is_pinned_only_with_a_digest():
    assert not Reference.parse("r.example/a:t").pinned
    pinned = Reference.parse("r.example/a:t").with_digest(DIGEST)
    assert pinned.pinned and str(pinned) == f"r.example/a:t@{DIGEST}"
    assert str(pinned.with_tag(None)) == f"r.example/a@{DIGEST}"


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("", "empty"),
        (" a/b", "whitespace"),
        ("a/b@sha256:1234", "digest 'sha256:1234'"),
        (f"a/b@md5:{'0' * 32}", "digest"),
        ("a/b:bad tag!", "tag 'bad tag!'"),
        ("a/b:-lead", "tag '-lead'"),
        ("Modelops/Bundles", "repository 'Modelops/Bundles'"),
        ("reg.example:5000/a//b", "repository"),
        ("reg.example/a/b_", "repository 'a/b_'"),
        ("bad_host.example:5000/a", "registry host 'bad_host.example:5000'"),
        ("reg.example:99999999/a", "registry host"),
    ],
)
def test_malformed_reference_error_names_the_part_at_fault(text, part):
    with pytest.raises(ReferenceError_) as info:
        Reference.parse(text)
    assert part in str(info.value), f"error for {text!r} should name {part!r}; got: {info.value}"
    assert repr(text) in str(info.value), f"error should quote the whole reference {text!r}; got: {info.value}"
