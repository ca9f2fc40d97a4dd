"""Normalize and SHA-256 the match keys of a custom audience upload, a column at a time.

Meta matches customer-file rows on the SHA-256 (lower-case hex) of values normalized its way:
an email trimmed and lower-cased, a phone as digits only with its country code and no leading
zeros; first and last names, city, country and gender have rules of their own. A row that
cannot be normalized is not uploaded: its hash is null and it is counted under a reason. A
value that already is 64 lower-case hex characters is taken as hashed and passed through.
Everything works on Arrow string arrays (slices honoured); the hashing is one ``hashlib``
call per row over a single bytes buffer, about 1 s per million emails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# RE2 classes: ASCII whitespace, Unicode separators and control/format characters.
_BLANK = r"\s\pZ\pC"
_PREHASHED = r"^[0-9a-f]{64}$"
_EMAIL = rf"^[^@{_BLANK}]+@[^@{_BLANK}.]+(\.[^@{_BLANK}.]+)+$"
_EMAIL_MAX_BYTES = 254  # RFC 5321 path limit
# E.164: at most 15 digits with the country code; fewer than 7 is no real number.
_PHONE_MIN_DIGITS = 7
_PHONE_MAX_DIGITS = 15
# Without a "+", "00" or trunk "0", a number this long or longer already holds its country code.
_PHONE_NATIONAL_MAX_DIGITS = 10

_MAX_OFFSET = 2**31 - 1  # int32 offsets of a pa.string() array
_HEX = np.frombuffer(b"".join(b"%02x" % i for i in range(256)), dtype=np.uint16)


@dataclass(frozen=True)
class Normalized:
    """Normalized values (null where the input was null or invalid) and why rows were dropped."""

    values: pa.StringArray
    prehashed: np.ndarray  # bool per row: already a SHA-256, upload as is
    invalid: Mapping[str, int]  # reason -> rows
    nulls: int  # null inputs (not invalid: nothing to upload)


@dataclass(frozen=True)
class Hashed:
    """Lower-case hex SHA-256 per row, null where nothing is uploaded."""

    hashes: pa.StringArray
    invalid: Mapping[str, int]
    nulls: int

    @property
    def valid(self) -> int:
        return len(self.hashes) - self.hashes.null_count


def _strings(values: pa.Array | list[str | None]) -> pa.StringArray:
    arr = values if isinstance(values, pa.Array) else pa.array(values, type=pa.string())
    if pa.types.is_large_string(arr.type) or pa.types.is_string_view(arr.type):
        arr = arr.cast(pa.string())
    if not pa.types.is_string(arr.type):
        raise TypeError(f"match keys must be strings, got an Arrow {arr.type} array")
    return arr


def _mask(arr: pa.Array) -> np.ndarray:
    """A boolean Arrow result as numpy, null counting as false."""
    return np.asarray(pc.fill_null(arr, False).to_numpy(zero_copy_only=False), dtype=bool)


def _classify(
    values: pa.StringArray, present: np.ndarray, checks: list[tuple[str, np.ndarray]]
) -> tuple[pa.StringArray, dict[str, int]]:
    """Nulls out the rows failing a check; each row is counted under its first failure."""
    bad = ~present
    counts: dict[str, int] = {}
    for reason, failed in checks:
        hit = failed & ~bad
        if hit.any():
            counts[reason] = int(hit.sum())
            bad |= hit
    kept = pc.if_else(pa.array(~bad), values, pa.scalar(None, pa.string()))
    return kept, counts


def normalize_emails(values: pa.Array | list[str | None]) -> Normalized:
    """Trim (Unicode whitespace) and lower-case; invalid: empty, not one "@", blanks inside,
    no dotted domain, longer than 254 bytes."""
    arr = _strings(values)
    present = ~_mask(arr.is_null())
    trimmed = pc.utf8_trim_whitespace(arr)
    prehashed = _mask(pc.match_substring_regex(trimmed, _PREHASHED)) & present
    lowered = pc.utf8_lower(trimmed)
    ats = np.asarray(pc.fill_null(pc.count_substring(lowered, "@"), 0), dtype=np.int64)
    kept, counts = _classify(
        lowered,
        present,
        [
            ("empty", _mask(pc.equal(pc.binary_length(lowered), 0))),
            ("not_one_at_sign", (ats != 1) & ~prehashed),
            ("blank_inside", _mask(pc.match_substring_regex(lowered, f"[{_BLANK}]"))),
            ("too_long", _mask(pc.greater(pc.binary_length(lowered), _EMAIL_MAX_BYTES))),
            ("bad_domain", ~_mask(pc.match_substring_regex(lowered, _EMAIL)) & ~prehashed),
        ],
    )
    return Normalized(kept, prehashed, counts, int((~present).sum()))


def normalize_phones(
    values: pa.Array | list[str | None], default_country_code: str = "1"
) -> Normalized:
    """Digits only, with the country code, no leading zeros (E.164 without the "+").

    A bracketed "(0)" is dropped. "+" or "00" in front: the digits hold the country code. A
    single trunk "0" in front (national form): it is replaced by ``default_country_code``.
    Neither: up to 10 digits is a national number (the default code is prepended), more
    already holds its code. Invalid: letters, fewer than 7 or more than 15 digits once
    normalized.
    """
    if not default_country_code.isdigit() or default_country_code.startswith("0"):
        raise ValueError(
            f"default country code must be digits without a leading 0, got {default_country_code!r}"
        )
    arr = _strings(values)
    present = ~_mask(arr.is_null())
    trimmed = pc.utf8_trim_whitespace(arr)
    prehashed = _mask(pc.match_substring_regex(trimmed, _PREHASHED)) & present
    # "+44 (0)20 ...": the bracketed trunk zero is not dialled from abroad.
    digits = pc.replace_substring_regex(pc.replace_substring(trimmed, "(0)", ""), r"[^0-9]", "")
    international = _mask(pc.starts_with(trimmed, "+")) | _mask(pc.starts_with(digits, "00"))
    trunk = _mask(pc.starts_with(digits, "0")) & ~international
    stripped = pc.utf8_ltrim(digits, characters="0")
    national = trunk | (
        ~international & _mask(pc.less_equal(pc.binary_length(digits), _PHONE_NATIONAL_MAX_DIGITS))
    )
    with_code = pc.if_else(
        pa.array(national),
        pc.binary_join_element_wise(default_country_code, stripped, ""),
        stripped,
    )
    normalized = pc.if_else(pa.array(prehashed), trimmed, with_code)
    length = pc.binary_length(normalized)
    kept, counts = _classify(
        normalized,
        present,
        [
            ("letters", _mask(pc.match_substring_regex(trimmed, r"\pL")) & ~prehashed),
            ("too_short", _mask(pc.less(length, _PHONE_MIN_DIGITS)) & ~prehashed),
            ("too_long", _mask(pc.greater(length, _PHONE_MAX_DIGITS)) & ~prehashed),
        ],
    )
    return Normalized(kept, prehashed, counts, int((~present).sum()))


def _cleaned(
    values: pa.Array | list[str | None],
    remove: str,
    valid: str,
    reason: str,
    replacement: str = "",
    fold: bool = False,
) -> Normalized:
    """Trimmed, lower-cased (accents split off when ``fold``), ``remove`` matches replaced;
    rows not matching ``valid`` are invalid."""
    arr = _strings(values)
    present = ~_mask(arr.is_null())
    trimmed = pc.utf8_trim_whitespace(arr)
    prehashed = _mask(pc.match_substring_regex(trimmed, _PREHASHED)) & present
    lowered = pc.utf8_lower(trimmed)
    if fold:
        lowered = pc.utf8_normalize(lowered, form="NFKD")
    cleaned = pc.replace_substring_regex(lowered, remove, replacement)
    normalized = pc.if_else(pa.array(prehashed), trimmed, cleaned)
    failed = ~_mask(pc.match_substring_regex(normalized, valid)) & ~prehashed
    kept, counts = _classify(normalized, present, [(reason, failed)])
    return Normalized(kept, prehashed, counts, int((~present).sum()))


def normalize_names(values: pa.Array | list[str | None]) -> Normalized:
    """FN / LN: lower-case without punctuation, symbols or blanks; accented letters are kept
    (the official SDK wrongly strips them). Invalid: nothing left."""
    return _cleaned(values, rf"[\pP\pS{_BLANK}]", r"^.+$", "empty")


def normalize_cities(values: pa.Array | list[str | None]) -> Normalized:
    """CT: the letters a-z only, accents folded ("São Paulo" is "saopaulo"), spaces and
    everything else dropped. Invalid: nothing left."""
    return _cleaned(values, r"[^a-z]", r"^[a-z]+$", "empty", fold=True)


def normalize_countries(values: pa.Array | list[str | None]) -> Normalized:
    """COUNTRY: an ISO 3166-1 alpha-2 code, lower-case. Invalid: anything else."""
    return _cleaned(values, r"^$", r"^[a-z]{2}$", "not_alpha2")


def normalize_genders(values: pa.Array | list[str | None]) -> Normalized:
    """GEN: ``m`` or ``f`` (``male`` / ``female`` accepted). Invalid: anything else."""
    return _cleaned(values, r"^(m|f)(?:ale|emale)$", r"^(m|f)$", "not_m_or_f", replacement=r"\1")


def sha256_hex(values: pa.StringArray) -> pa.StringArray:
    """Lower-case hex SHA-256 of each non-null value (UTF-8 bytes); nulls stay null."""
    n = len(values)
    if n * 64 > _MAX_OFFSET:
        raise ValueError(f"{n:,} values at once overflow an Arrow string array: hash in batches")
    valid = ~_mask(values.is_null())
    dense = values.filter(pa.array(valid))
    bounds = np.frombuffer(dense.buffers()[1], dtype=np.int32)[
        dense.offset : dense.offset + len(dense) + 1
    ].tolist()
    data_buffer = dense.buffers()[2]
    data = data_buffer.to_pybytes() if data_buffer is not None else b""
    sha = hashlib.sha256
    digests = b"".join([sha(data[a:b]).digest() for a, b in pairwise(bounds)])
    hexed = _HEX[np.frombuffer(digests, dtype=np.uint8)].tobytes()
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(valid * 64, out=offsets[1:])
    validity = pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(hexed), validity
    )


def hash_normalized(normalized: Normalized) -> Hashed:
    """SHA-256 of the normalized values; already hashed ones are passed through."""
    computed = sha256_hex(normalized.values)
    hashes = pc.if_else(pa.array(normalized.prehashed), normalized.values, computed)
    return Hashed(hashes, normalized.invalid, normalized.nulls)


def hash_emails(values: pa.Array | list[str | None]) -> Hashed:
    return hash_normalized(normalize_emails(values))


def hash_phones(values: pa.Array | list[str | None], default_country_code: str = "1") -> Hashed:
    return hash_normalized(normalize_phones(values, default_country_code))
