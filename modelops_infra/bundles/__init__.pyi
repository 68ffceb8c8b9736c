"""The public names of :mod:`modelops_infra.bundles`, declared once.

``__init__.py`` loads each name on first use (``lazy_loader.attach_stub`` reads
this file), so ``import modelops_infra.bundles`` costs nothing until a name is
used: ``mops --help`` does not import requests or the cache.
"""

from ._cache import BundleCache, Environment, Lease, LocalBundle
from ._envbuild import BuildOptions, build_environment, download_wheels
from ._digest import digest_bytes, digest_file, digest_hex, validate_digest
from ._ignore import IgnoreRules, list_bundle_files
from ._layout import BundleLayout
from ._manifest import MANIFEST_FILE, BundleManifest, parse_entrypoint, parse_manifest
from ._oci import (
    ARTIFACT_TYPE,
    CODE_LAYER_MEDIA_TYPE,
    CONFIG_MEDIA_TYPE,
    FILE_LAYER_MEDIA_TYPE,
    Descriptor,
    parse_oci_manifest,
)
from ._ops import (
    PushResult,
    WheelTarget,
    packed_bundle,
    inspect_bundle,
    pull_bundle,
    push_bundle,
    push_packed,
    resolve_reference,
)
from ._pack import DEFAULT_FILE_THRESHOLD, BlobSource, PackedBundle, pack_bundle
from ._reference import Reference, check_repository, check_tag
from ._registry import MIN_DOWNLOAD_RATE, RegistryClient, use_plain_http
from ._auth import (
    AcrExchange,
    AuthStrategy,
    Basic,
    BasicCredentials,
    BearerChallenge,
    choose_auth,
)
from ._host import RegistryHost, is_acr, registry_problem
from ._settings import (
    DEFAULT_REPOSITORY,
    BundleSettings,
    parse_bool,
    parse_registry,
    parse_seconds,
    parse_size,
)
from ._envspec import (
    ENVIRONMENT_FILES,
    REQUIREMENTS_FILE,
    EnvironmentSpec,
    PythonTarget,
    environment_key,
    find_environment,
    parse_requirements,
)
from ._validate import ValidationReport, entry_module_path, require_valid_bundle, validate_bundle
from .builtin import builtin_bundle_path

