"""Normalizing and hashing custom-audience match keys (emails, phones) over Arrow arrays."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from audience.integrations.meta.normalize import (
    Normalized,
    hash_emails,
    hash_normalized,
    hash_phones,
    normalize_cities,
    normalize_countries,
    normalize_emails,
    normalize_genders,
    normalize_names,
    normalize_phones,
    sha256_hex,
)


def sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# Meta's documented examples (first 8 and last 5 hex characters).
def test_meta_email_vector() -> None:
    digest = hash_emails(["  Mary@Example.COM\t"]).hashes[0].as_py()
    assert digest.startswith("f1904cf1") and digest.endswith("2bb79")
    assert digest == sha("mary@example.com")


@pytest.mark.parametrize(
    "raw", ["+1 (555) 987-6543", "555-987-6543", "15559876543", "+1.555.987.6543"]
)
def test_meta_phone_vector(raw: str) -> None:
    digest = hash_phones([raw]).hashes[0].as_py()
    assert digest.startswith("1ef97083") and digest.endswith("76a4e")
    assert digest == sha("15559876543")


@pytest.mark.parametrize(
    ("raw", "code", "expected"),
    [
        ("0044 20 7946 0958", "1", "442079460958"),  # "00" international prefix
        ("+44 (0)20 7946 0958", "1", "442079460958"),  # bracketed trunk zero dropped
        ("(0)20 7946 0958", "44", "442079460958"),
        ("020 7946 0958", "44", "442079460958"),  # trunk 0 -> default country code
        ("06 12 34 56 78", "33", "33612345678"),
        ("612345678", "33", "33612345678"),  # national, no trunk 0
        ("+33 6 12 34 56 78", "1", "33612345678"),
    ],
)
def test_phone_country_codes(raw: str, code: str, expected: str) -> None:
    assert normalize_phones([raw], code).values[0].as_py() == expected


def test_invalid_emails_are_counted_not_hashed() -> None:
    values = ["", "   ", "no-at.example.com", "a@@b.com", "a b@c.com", "a@localhost", "a@.com",
              "a@b.", "x@" + "d" * 260 + ".com", None, "ok@example.com"]  # fmt: skip
    result = hash_emails(values)
    assert result.hashes.to_pylist()[:-1] == [None] * 10
    assert result.hashes[-1].as_py() == sha("ok@example.com")
    assert result.invalid == {
        "empty": 2,
        "not_one_at_sign": 2,
        "blank_inside": 1,
        "too_long": 1,
        "bad_domain": 3,
    }
    assert result.nulls == 1 and result.valid == 1


def test_invalid_phones_are_counted_not_hashed() -> None:
    result = hash_phones(["call me", "12345", "+1 555 123 4567 8901 23", "", None, "555 987 6543"])
    assert result.hashes.to_pylist()[:5] == [None] * 5
    assert result.invalid == {"letters": 1, "too_short": 2, "too_long": 1}
    assert result.nulls == 1 and result.valid == 1


def test_prehashed_values_pass_through() -> None:
    hashed = sha("mary@example.com")
    assert hash_emails([f"  {hashed} "]).hashes.to_pylist() == [hashed]
    assert hash_phones([hashed]).hashes.to_pylist() == [hashed]
    # Upper-case hex is not a Meta hash: as an email it has no "@".
    assert hash_emails([hashed.upper()]).invalid == {"not_one_at_sign": 1}


def test_unicode_whitespace_and_case() -> None:
    # No-break space and ideographic space are trimmed; accents kept and lower-cased.
    result = normalize_emails(
        ["\u00a0\u00c9LODIE@Ex\u00e4mple.fr\u3000", "zo\u00eb@exam\u200bple.com"]
    )
    assert result.values.to_pylist() == ["\u00e9lodie@ex\u00e4mple.fr", None]
    assert result.invalid == {"blank_inside": 1}  # a zero-width space inside
    assert hash_emails(["\u00c9LODIE@EX\u00c4MPLE.FR"]).hashes[0].as_py() == sha(
        "\u00e9lodie@ex\u00e4mple.fr"
    )


@pytest.mark.parametrize(
    ("normalizer", "raw", "expected", "invalid"),
    [
        (normalize_names, [" O'Brien ", "Jean-Luc", "\u00c9lodie", "Mary Ann", "---"],
         ["obrien", "jeanluc", "\u00e9lodie", "maryann", None], {"empty": 1}),
        (normalize_cities, ["New York", "S\u00e3o Paulo", "St. Louis", "123"],
         ["newyork", "saopaulo", "stlouis", None], {"empty": 1}),
        (normalize_countries, ["US", " fr ", "USA", "1a"], ["us", "fr", None, None],
         {"not_alpha2": 2}),
        (normalize_genders, [" Male", "FEMALE", "f", "M", "x", "mf"],
         ["m", "f", "f", "m", None, None],
         {"not_m_or_f": 2}),
    ],
)  # fmt: skip
def test_other_keys(
    normalizer: Callable[[list[str | None]], Normalized],
    raw: list[str | None],
    expected: list[str | None],
    invalid: dict[str, int],
) -> None:
    normalized = normalizer([*raw, None])
    assert normalized.values.to_pylist() == [*expected, None]
    assert normalized.invalid == invalid and normalized.nulls == 1
    assert normalizer(normalized.values.to_pylist()).values.equals(normalized.values)
    hashes = hash_normalized(normalized).hashes.to_pylist()
    assert hashes == [None if v is None else sha(v) for v in normalized.values.to_pylist()]


def test_other_string_types_and_bad_types() -> None:
    assert hash_emails(pa.array(["A@B.co"], pa.large_string())).hashes[0].as_py() == sha("a@b.co")
    with pytest.raises(TypeError, match="strings"):
        hash_emails(pa.array([1, 2]))
    with pytest.raises(ValueError, match="country code"):
        normalize_phones(["555"], "+1")


def test_empty_and_all_null() -> None:
    assert len(hash_emails([]).hashes) == 0
    result = hash_emails(pa.array([None, None], pa.string()))
    assert result.hashes.to_pylist() == [None, None] and result.nulls == 2


emails = st.one_of(
    st.none(),
    st.text(max_size=30),
    st.builds(
        lambda pre, local, dom, tld, post: f"{pre}{local}@{dom}.{tld}{post}",
        st.sampled_from(["", " ", "\t", "\u00a0"]),
        st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=12),
        st.text(min_size=1, max_size=10),
        st.sampled_from(["com", "FR", "co.uk", "\u00e9x"]),
        st.sampled_from(["", " ", "\n"]),
    ),
)
phones = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.from_regex(r"\A[+]?[0 ]{0,2}[0-9 ().-]{5,18}\Z"),
)


@given(st.lists(emails, max_size=30), st.integers(0, 10), st.integers(0, 10))
def test_email_properties(values: list[str | None], start: int, length: int) -> None:
    arr = pa.array(values, pa.string()).slice(start, length)  # offsets honoured
    normalized = normalize_emails(arr)
    hashed = hash_emails(arr)
    assert len(hashed.hashes) == len(arr)
    assert normalize_emails(normalized.values).values.equals(normalized.values)  # idempotent
    assert sum(hashed.invalid.values()) + hashed.nulls + hashed.valid == len(arr)
    for raw, norm, digest in zip(
        arr.to_pylist(), normalized.values.to_pylist(), hashed.hashes.to_pylist(), strict=True
    ):
        if raw is None:
            assert norm is None and digest is None  # nulls stay null
        elif norm is None:
            assert digest is None  # invalid never hashed
        else:
            assert norm == raw.strip().lower() or len(norm) == 64
            assert digest == (norm if "@" not in norm else sha(norm))  # no "@": passed-through hash


@given(st.lists(phones, max_size=30), st.integers(0, 10), st.sampled_from(["1", "33", "44"]))
def test_phone_properties(values: list[str | None], start: int, code: str) -> None:
    arr = pa.array(values, pa.string()).slice(start)
    normalized = normalize_phones(arr, code)
    hashed = hash_phones(arr, code)
    assert sum(hashed.invalid.values()) + hashed.nulls + hashed.valid == len(arr)
    for raw, norm, digest in zip(
        arr.to_pylist(), normalized.values.to_pylist(), hashed.hashes.to_pylist(), strict=True
    ):
        if norm is None:
            assert digest is None
            continue
        assert raw is not None
        if len(norm) == 64 and not norm.isdigit():
            assert digest == norm
            continue
        assert norm.isdigit() and not norm.startswith("0") and 7 <= len(norm) <= 15
        assert digest == sha(norm)
        # E.164 form: normalizing "+" followed by the result changes nothing.
        assert normalize_phones(["+" + norm], code).values[0].as_py() == norm


@given(st.lists(st.one_of(st.none(), st.text(max_size=20)), max_size=20), st.integers(0, 5))
def test_sha256_hex_matches_hashlib(values: list[str | None], start: int) -> None:
    arr = pa.array(values, pa.string()).slice(start)
    assert sha256_hex(arr).to_pylist() == [None if v is None else sha(v) for v in arr.to_pylist()]


@given(
    st.lists(st.one_of(st.none(), st.text(max_size=15)), max_size=20),
    st.integers(0, 5),
    st.sampled_from([normalize_names, normalize_cities, normalize_countries, normalize_genders]),
)
def test_other_keys_properties(
    values: list[str | None], start: int, normalizer: Callable[[pa.Array], Normalized]
) -> None:
    arr = pa.array(values, pa.string()).slice(start)
    normalized = normalizer(arr)
    assert normalizer(normalized.values).values.equals(normalized.values)  # idempotent
    assert normalized.values.null_count == sum(normalized.invalid.values()) + normalized.nulls
    assert normalized.nulls == arr.null_count


def test_too_many_rows_for_one_string_array_is_refused() -> None:
    # 64 hex characters a row past 2**31 bytes would overflow the int32 offsets silently.
    with pytest.raises(ValueError, match="hash in batches"):
        sha256_hex(pa.nulls(2**31 // 64 + 1, pa.string()))
