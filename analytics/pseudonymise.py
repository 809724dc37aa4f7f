"""Keyed pseudonymisation of personal identifiers (survey respondents, portal users).

An HMAC-SHA256 with a secret key: the same person maps to the same token across files and days, so
counts and joins still work, but without the key nobody can recompute a token from a guessed
identifier (a plain hash of an e-mail address can be reversed by hashing a staff list).
"""

from __future__ import annotations

import hashlib
import hmac

import pandas as pd

TOKEN_PREFIX = "p_"


def pseudonymise(value: str, key: bytes) -> str:
    """Token for one identifier; identifiers are compared case-insensitively and trimmed."""
    digest = hmac.new(key, value.strip().lower().encode(), hashlib.sha256).hexdigest()
    return TOKEN_PREFIX + digest[:32]


def pseudonymise_series(values: pd.Series, key: bytes) -> pd.Series:
    """Vectorised over unique values, so a column with many repeats costs one HMAC per person."""
    uniques = values.dropna().unique()
    mapping = {v: pseudonymise(str(v), key) for v in uniques}
    return values.map(mapping)
