"""Basic auth against a registry configured with htpasswd: env vars, docker config, and errors without secrets."""

from __future__ import annotations

import base64
import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.services import Registry, start_registry, write_htpasswd
from modelops_infra.bundles import BasicCredentials, BundleCache, RegistryClient, pack_bundle, push_packed
from modelops_infra.errors import ConfigurationError, RegistryAuthError
from tests.bundles.helpers import count

USER, PASSWORD = "alice", "correct-horse-battery-staple-42"
WRONG = "wrong-password-do-not-echo-9731"


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    root = tmp_path_factory.mktemp("auth-registry")
    reg = start_registry(root, htpasswd=write_htpasswd(root / "htpasswd", {USER: PASSWORD, "bob": "bobs-password"}))
    yield reg
    reg.stop()


@pytest.fixture(scope="module")
def pushed(auth_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("auth-bundle")
    (root / "manifest.json").write_text(json.dumps({"name": "secret", "version": "1", "entrypoint": "sim:run"}))
    (root / "sim.py").write_text("def run(params, seed):\n    return {}\n")
    env = {"REGISTRY_USERNAME": USER, "REGISTRY_PASSWORD": PASSWORD}
    with RegistryClient(auth_registry.address, environ=env) as client:
        return push_packed(client, pack_bundle(root), "tests/private", tag="v1").digest


def docker_config(folder: Path, registry: str, entry: dict[str, str], key: str | None = None) -> dict[str, str]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"auths": {key or registry: entry}}))
    return {"DOCKER_CONFIG": str(folder)}


def b64(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def assert_no_secret(exc: BaseException, secret: str) -> None:
    texts = [str(exc), repr(exc), str(getattr(exc, "hint", "")), repr(pickle.loads(pickle.dumps(exc)).__dict__)]
    assert not any(secret in t for t in texts), f"the password must never appear in an error; got: {texts}"
    assert b64(USER, secret) not in str(exc), "nor its base64 form"


def test_the_registry_refuses_anonymous_access(auth_registry, pushed):
    with RegistryClient(auth_registry.address, environ={}) as client, pytest.raises(RegistryAuthError) as info:
        client.resolve("tests/private", "v1")
    assert auth_registry.address in str(info.value) and "anonymous" in str(info.value), str(info.value)
    assert "HTTP 401" in str(info.value)


def test_credentials_from_environment_variables_pass(auth_registry, pushed, tmp_path):
    env = {"REGISTRY_USERNAME": USER, "REGISTRY_PASSWORD": PASSWORD}
    with RegistryClient(auth_registry.address, environ=env) as client:
        assert client.resolve("tests/private", "v1") == pushed
        local = BundleCache(tmp_path / "cache").ensure("tests/private", pushed, client=client)
    assert (local.path / "sim.py").is_file(), "an authenticated pull should fetch and extract the bundle"


@pytest.mark.parametrize("form", ["auth", "username-password", "https-key", "http-key"])
def test_credentials_from_a_docker_config_pass(auth_registry, pushed, tmp_path, form):
    entry = {"auth": b64(USER, PASSWORD)} if form != "username-password" else {"username": USER, "password": PASSWORD}
    key = {"https-key": f"https://{auth_registry.address}", "http-key": f"http://{auth_registry.address}"}.get(form)
    env = docker_config(tmp_path / "docker", auth_registry.address, entry, key)
    with RegistryClient(auth_registry.address, environ=env) as client:
        assert client.resolve("tests/private", "v1") == pushed


def test_environment_variables_take_precedence_over_the_docker_config(auth_registry, pushed, tmp_path):
    env = docker_config(tmp_path / "docker", auth_registry.address, {"auth": b64(USER, WRONG)})
    env.update(REGISTRY_USERNAME=USER, REGISTRY_PASSWORD=PASSWORD)
    with RegistryClient(auth_registry.address, environ=env) as client:
        assert client.resolve("tests/private", "v1") == pushed


def test_explicit_credentials_pass_and_never_show_their_password(auth_registry, pushed):
    creds = BasicCredentials(USER, PASSWORD)
    assert PASSWORD not in repr(creds) and PASSWORD not in creds.describe()
    with RegistryClient(auth_registry.address, credentials=creds, environ={}) as client:
        assert client.resolve("tests/private", "v1") == pushed


def test_wrong_credentials_from_the_environment_name_registry_source_and_user_but_not_the_password(
        auth_registry, pushed):
    env = {"REGISTRY_USERNAME": USER, "REGISTRY_PASSWORD": WRONG}
    before = count(auth_registry, "HEAD", "/tests/private/manifests/v1")
    with RegistryClient(auth_registry.address, environ=env) as client, pytest.raises(RegistryAuthError) as info:
        client.resolve("tests/private", "v1")
    message = str(info.value)
    for needle in (auth_registry.address, "REGISTRY_USERNAME/REGISTRY_PASSWORD", repr(USER), "HTTP 401"):
        assert needle in message, f"the auth error should mention {needle!r}; got: {message}"
    assert_no_secret(info.value, WRONG)
    assert count(auth_registry, "HEAD", "/tests/private/manifests/v1") - before == 2, (
        "a 401 should be answered once with credentials, then given up: exactly two requests"
    )


def test_wrong_credentials_from_a_docker_config_name_the_config_file(auth_registry, pushed, tmp_path):
    env = docker_config(tmp_path / "docker", auth_registry.address, {"auth": b64("bob", WRONG)})
    with RegistryClient(auth_registry.address, environ=env) as client, pytest.raises(RegistryAuthError) as info:
        client.get_manifest("tests/private", "v1")
    message = str(info.value)
    assert str(tmp_path / "docker" / "config.json") in message and "'bob'" in message, message
    assert_no_secret(info.value, WRONG)


def test_a_push_with_wrong_credentials_is_refused_without_the_password(auth_registry, make_bundle):
    env = {"REGISTRY_USERNAME": USER, "REGISTRY_PASSWORD": WRONG}
    with RegistryClient(auth_registry.address, environ=env) as client, pytest.raises(RegistryAuthError) as info:
        push_packed(client, pack_bundle(make_bundle("denied")), "tests/private", tag="denied")
    assert auth_registry.address in str(info.value)
    assert_no_secret(info.value, WRONG)


def test_a_docker_config_that_is_not_json_is_a_configuration_error_naming_it(auth_registry, tmp_path):
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text("{not json")
    with pytest.raises(ConfigurationError) as info:
        RegistryClient(auth_registry.address, environ={"DOCKER_CONFIG": str(tmp_path / "docker")})
    assert str(tmp_path / "docker" / "config.json") in str(info.value)


def test_a_docker_config_for_another_registry_is_not_used(auth_registry, pushed, tmp_path):
    env = docker_config(tmp_path / "docker", auth_registry.address, {"auth": b64(USER, PASSWORD)}, key="other.example")
    with RegistryClient(auth_registry.address, environ=env) as client, pytest.raises(RegistryAuthError) as info:
        client.resolve("tests/private", "v1")
    assert "anonymous" in str(info.value)


@pytest.mark.parametrize("name", ["docker.io", "index.docker.io"])
def test_docker_hub_credentials_are_found_under_the_index_url_docker_login_writes(tmp_path, name):
    import base64

    from modelops_infra.bundles._auth import resolve_basic_credentials

    auth = base64.b64encode(b"hubuser:hubpass").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": auth}}}))
    creds = resolve_basic_credentials(name, {"DOCKER_CONFIG": str(tmp_path)})
    assert creds is not None and (creds.username, creds.password) == ("hubuser", "hubpass")
    assert resolve_basic_credentials("registry.example", {"DOCKER_CONFIG": str(tmp_path)}) is None, \
        "Docker Hub's entry is Docker Hub's only"
