"""Kubernetes quantity parsing and the bundle cache cap: exact numbers, and errors that name the key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelops_infra.bundles import parse_size
from modelops_infra.errors import ConfigurationError
from modelops_infra.infra.quantities import (
    CACHE_CAP_MINIMUM,
    CACHE_HEADROOM_FLOOR,
    CACHE_HEADROOM_PERCENT,
    CACHE_SIZE_MINIMUM,
    bundle_cache_cap,
    parse_cpu,
    parse_memory,
    worker_sizes,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4Gi", 4 * 2**30),
        ("512Mi", 512 * 2**20),
        ("1.5Gi", 3 * 2**29),
        ("1Ti", 2**40),
        ("500M", 500 * 10**6),
        ("2G", 2 * 10**9),
        ("128k", 128_000),
        ("1048576", 2**20),
        (1024, 1024),
    ],
)
def test_memory_quantities_parse_to_bytes(text: object, expected: int) -> None:
    assert parse_memory(text, key="k") == expected


@pytest.mark.parametrize("bad", ["4GB", "4gi", "lots", "", "-1Gi", "0", "1.5", "4 Gi", "Gi", True, None, [1]])
def test_malformed_memory_raises_configuration_error_naming_the_key(bad: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_memory(bad, key="modelops:workspace.memory")
    assert str(info.value).startswith("modelops:workspace.memory:"), str(info.value)
    assert info.value.key == "modelops:workspace.memory"


@pytest.mark.parametrize(("text", "expected"), [("2", 2000), ("500m", 500), ("1.5", 1500), ("0.25", 250), (3, 3000)])
def test_cpu_quantities_parse_to_millicores(text: object, expected: int) -> None:
    assert parse_cpu(text, key="k") == expected


@pytest.mark.parametrize("bad", ["2 cores", "1Gi", "0", "0.0001", "m", "-1", False])
def test_malformed_cpu_raises_configuration_error_naming_the_key(bad: object) -> None:
    with pytest.raises(ConfigurationError, match=r"^modelops:workspace\.cpu: "):
        parse_cpu(bad, key="modelops:workspace.cpu")


# --------------------------------------------------------------------------- the bundle cache cap

GiB, MiB = 2**30, 2**20


@pytest.mark.parametrize(
    ("size", "cap"),
    [
        ("1280Mi", 256 * MiB),  # the smallest cache: 1 GiB headroom leaves the minimum cap
        ("2Gi", 1 * GiB),
        ("5Gi", 4 * GiB),  # where 20 % equals the 1 GiB floor
        (5 * GiB + 1, 4 * GiB),  # 20 % rounds up, so the headroom never falls short of it
        ("6Gi", 5_153_960_755),  # 6442450944 - ceil(1288490188.8)
        ("10Gi", 8 * GiB),
        ("10G", 8 * 10**9),
        ("1Ti", 879_609_302_220),  # 1099511627776 - ceil(219902325555.2)
    ],
)
def test_cache_cap_is_the_size_less_max_of_1gib_and_20_percent(size: object, cap: int) -> None:
    assert bundle_cache_cap(size, key="k") == cap


@pytest.mark.parametrize("small", ["500Mi", "1Gi", "1279Mi", CACHE_SIZE_MINIMUM - 1, "1", "100M"])
def test_a_cache_too_small_for_a_positive_cap_is_refused_naming_the_key(small: object) -> None:
    with pytest.raises(ConfigurationError) as info:
        bundle_cache_cap(small, key="modelops:workspace.cacheSize")
    message = str(info.value)
    assert message.startswith(f"modelops:workspace.cacheSize: {small!r} is too small for the bundle cache"), message
    assert "at least 1280Mi" in message, f"the hint names the smallest size that works: {message}"
    assert info.value.key == "modelops:workspace.cacheSize"


def test_a_malformed_cache_size_is_a_quantity_error() -> None:
    with pytest.raises(ConfigurationError, match=r"^modelops:workspace\.cacheSize: malformed memory quantity 'big'"):
        bundle_cache_cap("big", key="modelops:workspace.cacheSize")


_SIZES = st.integers(min_value=CACHE_SIZE_MINIMUM, max_value=2**60)


@given(_SIZES)
def test_cache_cap_leaves_one_bundle_of_headroom_and_no_more(size: int) -> None:
    cap = bundle_cache_cap(size, key="k")
    assert CACHE_CAP_MINIMUM <= cap, "the cap never falls below the minimum"
    assert cap <= size - CACHE_HEADROOM_FLOOR, "at least the fixed floor of headroom"
    assert cap * 100 <= size * (100 - CACHE_HEADROOM_PERCENT), "at least 20 % of headroom"
    tighter = cap + 1
    assert tighter > size - CACHE_HEADROOM_FLOOR or tighter * 100 > size * (100 - CACHE_HEADROOM_PERCENT), (
        "the headroom is the larger of the two, not more"
    )


@given(_SIZES, _SIZES)
def test_a_larger_cache_never_gets_a_smaller_cap(a: int, b: int) -> None:
    small, large = sorted((a, b))
    assert bundle_cache_cap(small, key="k") <= bundle_cache_cap(large, key="k")


@given(_SIZES)
def test_cache_cap_round_trips_through_the_worker_setting(size: int) -> None:
    cap = bundle_cache_cap(size, key="k")
    assert parse_size(str(cap), key="MODELOPS_BUNDLE_CACHE_MAX_BYTES") == cap


@given(st.integers(min_value=1280, max_value=2**30))
def test_a_mebibyte_quantity_and_its_bytes_give_the_same_cap(mebibytes: int) -> None:
    assert bundle_cache_cap(f"{mebibytes}Mi", key="k") == bundle_cache_cap(mebibytes * MiB, key="k")


@given(st.integers(min_value=1, max_value=CACHE_SIZE_MINIMUM - 1))
def test_every_size_below_the_minimum_is_refused(size: int) -> None:
    with pytest.raises(ConfigurationError, match="too small for the bundle cache"):
        bundle_cache_cap(size, key="k")


def _sizes(cpu: str = "2", memory: str = "4Gi", cache_size: str = "10Gi", threads: int | None = None):
    return worker_sizes(cpu=cpu, memory=memory, cache_size=cache_size, threads=threads,
                        key=lambda field: f"DaskWorkspace 'w': {field}")


@pytest.mark.parametrize(("cpu", "nthreads"), [("2500m", 2), ("500m", 1), ("1", 1), ("4", 4), ("1.5", 1)])
def test_worker_threads_default_to_the_whole_cores_of_cpu_and_at_least_one(cpu: str, nthreads: int) -> None:
    assert _sizes(cpu=cpu).nthreads == nthreads


def test_worker_sizes_take_threads_as_given_and_derive_memory_and_the_cache_cap() -> None:
    sizes = _sizes(cpu="4", memory="16Gi", cache_size="10Gi", threads=3)
    assert (sizes.nthreads, sizes.memory_bytes, sizes.cache_max_bytes) == (3, 16 * 2**30, 8 * 2**30)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"threads": 0}, "DaskWorkspace 'w': threads: must be >= 1, got 0"),
        ({"cpu": "two"}, "DaskWorkspace 'w': cpu: malformed CPU quantity 'two'"),
        ({"memory": "8GB"}, "DaskWorkspace 'w': memory: malformed memory quantity '8GB'"),
        ({"cache_size": "1Gi"}, "DaskWorkspace 'w': cache_size: '1Gi' is too small for the bundle cache"),
    ],
)
def test_worker_sizes_name_the_field_at_fault(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        _sizes(**overrides)  # type: ignore[arg-type]
    assert message in str(info.value), f"expected {message!r} in {str(info.value)!r}"
