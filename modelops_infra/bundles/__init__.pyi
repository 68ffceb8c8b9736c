"""The public names of :mod:`modelops_infra.bundles`, declared once.

``__init__.py`` loads each name on first use (``lazy_loader.attach_stub`` reads
this file), so ``import modelops_infra.bundles`` costs nothing until a name is
used: ``mops --help`` does not import requests or the cache.
"""

from ._auth import (
    AcrExchange as AcrExchange,
)
from ._auth import (
    AuthStrategy as AuthStrategy,
)
from ._auth import (
    Basic as Basic,
)
from ._auth import (
    BasicCredentials as BasicCredentials,
)
from ._auth import (
    BearerChallenge as BearerChallenge,
)
from ._auth import (
    choose_auth as choose_auth,
)
from ._cache import (
    BundleCache as BundleCache,
)
from ._cache import (
    Environment as Environment,
)
from ._cache import (
    Lease as Lease,
)
from ._cache import (
    LocalBundle as LocalBundle,
)
from ._digest import (
    digest_bytes as digest_bytes,
)
from ._digest import (
    digest_file as digest_file,
)
from ._digest import (
    digest_hex as digest_hex,
)
from ._digest import (
    validate_digest as validate_digest,
)
from ._envbuild import (
    BuildOptions as BuildOptions,
)
from ._envbuild import (
    build_environment as build_environment,
)
from ._envbuild import (
    download_wheels as download_wheels,
)
from ._envspec import (
    ENVIRONMENT_FILES as ENVIRONMENT_FILES,
)
from ._envspec import (
    REQUIREMENTS_FILE as REQUIREMENTS_FILE,
)
from ._envspec import (
    EnvironmentSpec as EnvironmentSpec,
)
from ._envspec import (
    PythonTarget as PythonTarget,
)
from ._envspec import (
    environment_key as environment_key,
)
from ._envspec import (
    find_environment as find_environment,
)
from ._envspec import (
    parse_requirements as parse_requirements,
)
from ._host import (
    RegistryHost as RegistryHost,
)
from ._host import (
    is_acr as is_acr,
)
from ._host import (
    registry_problem as registry_problem,
)
from ._ignore import (
    IgnoreRules as IgnoreRules,
)
from ._ignore import (
    list_bundle_files as list_bundle_files,
)
from ._layout import BundleLayout as BundleLayout
from ._manifest import (
    MANIFEST_FILE as MANIFEST_FILE,
)
from ._manifest import (
    BundleManifest as BundleManifest,
)
from ._manifest import (
    parse_entrypoint as parse_entrypoint,
)
from ._manifest import (
    parse_manifest as parse_manifest,
)
from ._oci import (
    ARTIFACT_TYPE as ARTIFACT_TYPE,
)
from ._oci import (
    CODE_LAYER_MEDIA_TYPE as CODE_LAYER_MEDIA_TYPE,
)
from ._oci import (
    CONFIG_MEDIA_TYPE as CONFIG_MEDIA_TYPE,
)
from ._oci import (
    FILE_LAYER_MEDIA_TYPE as FILE_LAYER_MEDIA_TYPE,
)
from ._oci import (
    Descriptor as Descriptor,
)
from ._oci import (
    parse_oci_manifest as parse_oci_manifest,
)
from ._ops import (
    PushResult as PushResult,
)
from ._ops import (
    WheelTarget as WheelTarget,
)
from ._ops import (
    inspect_bundle as inspect_bundle,
)
from ._ops import (
    packed_bundle as packed_bundle,
)
from ._ops import (
    pull_bundle as pull_bundle,
)
from ._ops import (
    push_bundle as push_bundle,
)
from ._ops import (
    push_packed as push_packed,
)
from ._ops import (
    resolve_reference as resolve_reference,
)
from ._pack import (
    DEFAULT_FILE_THRESHOLD as DEFAULT_FILE_THRESHOLD,
)
from ._pack import (
    BlobSource as BlobSource,
)
from ._pack import (
    PackedBundle as PackedBundle,
)
from ._pack import (
    pack_bundle as pack_bundle,
)
from ._reference import (
    Reference as Reference,
)
from ._reference import (
    check_repository as check_repository,
)
from ._reference import (
    check_tag as check_tag,
)
from ._registry import (
    MIN_DOWNLOAD_RATE as MIN_DOWNLOAD_RATE,
)
from ._registry import (
    RegistryClient as RegistryClient,
)
from ._registry import (
    use_plain_http as use_plain_http,
)
from ._settings import (
    DEFAULT_REPOSITORY as DEFAULT_REPOSITORY,
)
from ._settings import (
    BundleSettings as BundleSettings,
)
from ._settings import (
    parse_bool as parse_bool,
)
from ._settings import (
    parse_registry as parse_registry,
)
from ._settings import (
    parse_seconds as parse_seconds,
)
from ._settings import (
    parse_size as parse_size,
)
from ._validate import (
    ValidationReport as ValidationReport,
)
from ._validate import (
    entry_module_path as entry_module_path,
)
from ._validate import (
    require_valid_bundle as require_valid_bundle,
)
from ._validate import (
    validate_bundle as validate_bundle,
)
from .builtin import builtin_bundle_path as builtin_bundle_path
