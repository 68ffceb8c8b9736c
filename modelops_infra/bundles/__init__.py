"""Bundles: format, reproducible packing, registry client and verified local cache.

No Pulumi here, and no Dask: this package is what a worker needs to fetch code.

>>> from modelops_infra.bundles import pack_bundle, validate_bundle   # doctest: +SKIP
>>> pack_bundle("examples/sir").digest                                # doctest: +SKIP
'sha256:...'
"""

from modelops_infra.bundles._cache import BundleCache, Environment, Lease, LocalBundle
from modelops_infra.bundles._envbuild import BuildOptions, build_environment, download_wheels
from modelops_infra.bundles._digest import digest_bytes, digest_file, digest_hex, validate_digest
from modelops_infra.bundles._ignore import IgnoreRules, list_bundle_files
from modelops_infra.bundles._layout import BundleLayout
from modelops_infra.bundles._manifest import MANIFEST_FILE, BundleManifest, parse_entrypoint, parse_manifest
from modelops_infra.bundles._oci import (
    ARTIFACT_TYPE,
    CODE_LAYER_MEDIA_TYPE,
    CONFIG_MEDIA_TYPE,
    FILE_LAYER_MEDIA_TYPE,
    Descriptor,
    parse_oci_manifest,
)
from modelops_infra.bundles._ops import (
    PushResult,
    WheelTarget,
    packed_bundle,
    inspect_bundle,
    pull_bundle,
    push_bundle,
    push_packed,
    resolve_reference,
)
from modelops_infra.bundles._pack import DEFAULT_FILE_THRESHOLD, BlobSource, PackedBundle, pack_bundle
from modelops_infra.bundles._reference import Reference, check_repository, check_tag
from modelops_infra.bundles._registry import MIN_DOWNLOAD_RATE, RegistryClient, use_plain_http
from modelops_infra.bundles._auth import (
    AcrExchange,
    AuthStrategy,
    Basic,
    BasicCredentials,
    BearerChallenge,
    choose_auth,
)
from modelops_infra.bundles._host import RegistryHost, is_acr, registry_problem
from modelops_infra.bundles._settings import (
    DEFAULT_REPOSITORY,
    BundleSettings,
    parse_bool,
    parse_registry,
    parse_seconds,
    parse_size,
)
from modelops_infra.bundles._envspec import (
    ENVIRONMENT_FILES,
    REQUIREMENTS_FILE,
    EnvironmentSpec,
    PythonTarget,
    environment_key,
    find_environment,
    parse_requirements,
)
from modelops_infra.bundles._validate import ValidationReport, entry_module_path, require_valid_bundle, validate_bundle
from modelops_infra.bundles.builtin import builtin_bundle_path

__all__ = [
    "BuildOptions", "Environment", "WheelTarget", "build_environment", "download_wheels", "packed_bundle",
    "ENVIRONMENT_FILES", "EnvironmentSpec", "PythonTarget", "environment_key", "find_environment",
    "ARTIFACT_TYPE", "BasicCredentials", "BlobSource", "BundleCache", "BundleLayout", "BundleManifest", "BundleSettings",
    "CODE_LAYER_MEDIA_TYPE", "CONFIG_MEDIA_TYPE", "DEFAULT_FILE_THRESHOLD", "DEFAULT_REPOSITORY", "Descriptor",
    "FILE_LAYER_MEDIA_TYPE", "IgnoreRules", "Lease", "LocalBundle", "MANIFEST_FILE", "PackedBundle", "PushResult",
    "REQUIREMENTS_FILE", "Reference", "RegistryClient", "ValidationReport", "builtin_bundle_path", "digest_bytes",
    "digest_file", "digest_hex", "entry_module_path", "inspect_bundle", "list_bundle_files", "pack_bundle", "parse_bool",
    "parse_entrypoint", "parse_manifest", "parse_oci_manifest", "parse_requirements", "parse_size", "pull_bundle",
    "push_bundle", "push_packed", "require_valid_bundle", "resolve_reference", "use_plain_http", "validate_bundle",
    "validate_digest",
    # registry hosts, auth strategies and bounds (issue 8)
    "AcrExchange", "AuthStrategy", "Basic", "BearerChallenge", "MIN_DOWNLOAD_RATE", "RegistryHost", "check_repository",
    "check_tag", "choose_auth", "is_acr", "parse_registry", "parse_seconds", "registry_problem",
]
