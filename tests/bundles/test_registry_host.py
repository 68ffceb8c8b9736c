"""Registry strings are parsed once, by one parser: ``host[:port]`` or a clear refusal naming where it came from.

The loopback (plain HTTP) and Azure (AAD exchange, never plain HTTP) decisions
are made on the parsed host only, so no crafted string passes as either.
Property tests drive the same parser, and the bundle-reference parser built on it,
with generated input.
"""

from __future__ import annotations

import string

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from modelops_infra.bundles import BundleSettings, Reference, RegistryClient, RegistryHost, use_plain_http
from modelops_infra.bundles._http import origin
from modelops_infra.client import get_registry_url, load_bundle_env, write_bundle_env
from modelops_infra.errors import ConfigurationError, ReferenceError_


@pytest.mark.parametrize(("text", "reason"), [
    ("", "empty"),
    ("user@reg.example", "userinfo"),
    ("[::1]@10.0.0.1:5000", "userinfo"),
    ("127.0.0.1:1@x.azurecr.io", "userinfo"),
    ("reg.example.", "trailing dot"),
    ("localhost.:5000", "trailing dot"),
    ("127.0.0.1:", "port after ':' is empty"),
    ("127.0.0.1:99999", "port '99999'"),
    ("127.0.0.1:0", "port '0'"),
    (":5000", "host name is empty"),
    ("https://reg.example", "scheme"),
    ("reg.example/modelops", "path"),
    ("reg.example?x=1", "path, query"),
    ("reg..example", "empty label"),
    ("-reg.example", "label '-reg'"),
    ("reg_x.example", "label 'reg_x'"),
    ("127.1", "dotted-quad"),
    ("0x7f.0.0.1", "dotted-quad"),
    ("256.0.0.1", "dotted-quad"),
    ("::1", "more than one ':'"),
    ("[::1", "closing"),
    ("[::g]:5000", "not an IPv6 address"),
    ("[fe80::1%eth0]", "zone id"),
    ("[::1]5000", "after the IPv6 address"),
    ("reg.example :5000", "whitespace"),
])
def test_a_string_that_is_not_host_and_port_is_refused_with_the_reason_and_its_source(text, reason):
    with pytest.raises(ConfigurationError) as info:
        RegistryHost.parse(text, source="--registry")
    message = str(info.value)
    assert "--registry" in message and repr(text) in message and reason in message, (
        f"refusing {text!r} should name the source, the value and the reason {reason!r}; got: {message}")


@pytest.mark.parametrize(("text", "loopback", "acr"), [
    ("127.0.0.1:5000", True, False),
    ("localhost", True, False),
    ("LOCALHOST:5000", True, False),
    ("[::1]:5000", True, False),
    ("127.3.4.5", True, False),
    ("10.0.0.1:5000", False, False),
    ("localhost.example.com", False, False),
    ("myreg.azurecr.io", False, True),
    ("MyReg.AzureCR.io:443", False, True),
    ("azurecr.io", False, False),
    ("myreg.azurecr.io.evil.example", False, False),
])
def test_loopback_and_azure_are_decided_on_the_parsed_host(text, loopback, acr):
    host = RegistryHost.parse(text)
    assert (host.is_loopback, host.is_acr) == (loopback, acr), f"{text!r}: expected loopback={loopback} acr={acr}"
    assert str(host) == text, "the parsed host prints back as given, so references round-trip"


def test_the_client_refuses_a_malformed_registry_before_any_network_io():
    with pytest.raises(ConfigurationError, match=r"port '99999'"):
        RegistryClient("127.0.0.1:99999", environ={})
    with pytest.raises(ConfigurationError, match="userinfo"):
        RegistryClient("127.0.0.1:1@x.azurecr.io", environ={})


@pytest.mark.parametrize("value", ["127.0.0.1:99999", "user@reg.example", "reg.example.", "http://reg.example"])
def test_the_registry_setting_is_validated_when_read(value, tmp_path):
    with pytest.raises(ConfigurationError) as info:
        BundleSettings.from_env({"MODELOPS_BUNDLE_REGISTRY": value})
    assert "MODELOPS_BUNDLE_REGISTRY" in str(info.value) and repr(value) in str(info.value), str(info.value)
    with pytest.raises(ConfigurationError, match="MODELOPS_BUNDLE_REGISTRY"):
        get_registry_url("dev", environ={"MODELOPS_BUNDLE_REGISTRY": value, "HOME": str(tmp_path)})


def test_a_bundle_env_file_with_a_bad_login_server_is_refused_naming_the_file(tmp_path):
    env = {"HOME": str(tmp_path)}
    path = write_bundle_env("dev", "127.0.0.1:5000", environ=env)
    path.write_text("registry:\n  login_server: 'me@127.0.0.1:5000'\n")
    with pytest.raises(ConfigurationError) as info:
        load_bundle_env("dev", environ=env)
    assert str(path) in str(info.value) and "userinfo" in str(info.value), str(info.value)
    with pytest.raises(ConfigurationError, match="trailing dot"):
        write_bundle_env("dev", "reg.example.", environ=env)


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "-inf", "1e400"])
def test_a_timeout_that_is_not_positive_and_finite_is_a_configuration_error(value):
    with pytest.raises(ConfigurationError) as info:
        BundleSettings.from_env({"MODELOPS_BUNDLE_TIMEOUT": value})
    assert "MODELOPS_BUNDLE_TIMEOUT" in str(info.value) and repr(value) in str(info.value), str(info.value)


# -- properties ------------------------------------------------------------------------------------

_LABEL_CHARS = string.ascii_letters + string.digits
labels = st.builds(
    lambda first, middle, last: first + middle + last if middle or last else first,
    st.sampled_from(_LABEL_CHARS), st.text(_LABEL_CHARS + "-", max_size=8), st.sampled_from(_LABEL_CHARS),
)
names = st.lists(labels, min_size=1, max_size=4).map(".".join).filter(
    lambda name: not name.rsplit(".", 1)[-1].isdigit() and not name.rsplit(".", 1)[-1].lower().startswith("0x"))
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.ip_addresses(v=6).map(lambda a: f"[{a}]")
ports = st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}"))
valid_hosts = st.builds(lambda h, p: h + p, st.one_of(names, ipv4, ipv6), ports)


@given(valid_hosts)
@settings(max_examples=300)
def test_every_valid_host_and_port_parses_and_prints_back_unchanged(text):
    host = RegistryHost.parse(text)
    assert str(host) == text, f"{text!r} should round-trip, got {str(host)!r}"
    assert RegistryHost.parse(str(host)) == host


@given(st.text(max_size=40))
@example("[::1]@10.0.0.1:5000")
@example("127.0.0.1:1@x.azurecr.io")
@example("localhost:")
@settings(max_examples=500)
def test_any_string_either_parses_to_a_plain_host_or_is_a_configuration_error(text):
    try:
        host = RegistryHost.parse(text)
    except ConfigurationError:
        return
    assert str(host) == text
    assert not any(c in text for c in "@/?#\\ ") and not text.endswith("."), f"{text!r} should have been refused"
    if host.is_loopback:
        assert host.host.lower() == "localhost" or host.host.startswith(("127.", "::1", "0:0:0:0:0:0:0:1")), (
            f"{text!r} passed as loopback")
    if host.is_acr:
        assert host.host.lower().endswith(".azurecr.io"), f"{text!r} passed as an Azure registry"
        with pytest.raises(ConfigurationError):
            use_plain_http(host, True)


@given(valid_hosts, st.text(min_size=1, max_size=20))
def test_userinfo_around_a_valid_host_is_always_refused(host, other):
    for text in (f"{other}@{host}", f"{host}@{other}"):
        with pytest.raises(ConfigurationError):
            RegistryHost.parse(text)


@given(valid_hosts)
def test_a_trailing_dot_is_always_refused(host):
    with pytest.raises(ConfigurationError):
        RegistryHost.parse((host if host.startswith("[") else host.split(":")[0]) + ".")


components = st.from_regex(r"\A[a-z0-9]+(?:[._-][a-z0-9]+){0,2}\Z")
repositories = st.lists(components, min_size=1, max_size=3).map("/".join)
tags = st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}\Z")
digests = st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: f"sha256:{h}")


@given(st.one_of(st.none(), valid_hosts.filter(lambda h: "." in h or ":" in h or h == "localhost")), repositories,
       st.one_of(st.none(), tags), st.one_of(st.none(), digests))
@settings(max_examples=300)
def test_every_well_formed_reference_round_trips(registry, repository, tag, digest):
    # As in Docker's grammar, a first component holding '.' or ':' names a registry; without a
    # registry, the repository's first component must therefore not look like one.
    if registry is None and ("." in repository.split("/")[0] and "/" in repository):
        repository = "r/" + repository
    ref = Reference(registry, repository, tag, digest)
    assert Reference.parse(str(ref)) == ref, f"{str(ref)!r} should parse back to {ref}"


@given(st.text(max_size=60))
@example("[::1]@10.0.0.1:5000/a/b")
@example("127.0.0.1:1@x.azurecr.io/a")
@example("reg.example.:5000/a")
@settings(max_examples=500)
def test_any_reference_string_parses_or_is_a_reference_error_and_its_registry_is_a_valid_host(text):
    try:
        ref = Reference.parse(text)
    except ReferenceError_:
        return
    if ref.registry is not None:
        assert str(RegistryHost.parse(ref.registry)) == ref.registry, f"{text!r} gave registry {ref.registry!r}"
    assert Reference.parse(str(ref)) == ref


@pytest.mark.parametrize(("name", "api"), [
    ("docker.io", "registry-1.docker.io"), ("index.docker.io", "registry-1.docker.io"),
    ("Docker.IO", "registry-1.docker.io"), ("docker.io:443", "docker.io:443"),
    ("myreg.azurecr.io", "myreg.azurecr.io"), ("127.0.0.1:5000", "127.0.0.1:5000"),
])
def test_docker_hub_is_named_docker_io_but_its_api_answers_on_registry_1(name, api):
    host = RegistryHost.parse(name)
    assert host.api_netloc == api and str(host) == name, "references keep the name they were written with"
    with RegistryClient(name) as client:
        assert client._url("/v2/") == f"{client.scheme}://{api}/v2/"
        assert client._auth.origin == origin(f"{client.scheme}://{api}/"), "credentials go to the API host only"
