"""Exemptions: an entity is excused from a check, with a justification, an author and an expiry.

An active exemption makes the check count as passed for that entity until it expires or is
revoked (Soundcheck's semantics); the raw state stays visible next to it. The rules here are pure;
storing the register and writing the audit log is the caller's job (`catalog-pipelines scorecard
exempt` / `revoke`).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pandas as pd

MIN_JUSTIFICATION = 10
MAX_DURATION = timedelta(days=366)
COLUMNS = ["exemption_id", "entity_ref", "check_id", "justification", "author", "created_at", "expires_at", "revoked_at", "revoked_by", "revoke_reason"]


class ExemptionError(ValueError):
    """The exemption request breaks a rule (reason in the message)."""


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def new_exemption(*, entity_ref: str, check_id: str, justification: str, author: str, expires_at: datetime, now: datetime, known_checks: set[str] | None = None) -> dict[str, object]:
    """A validated exemption row; raises `ExemptionError` with the reason otherwise."""
    now, expires_at = _utc(now), _utc(expires_at)
    if not author or not author.strip():
        raise ExemptionError("an exemption needs an author")
    if len((justification or "").strip()) < MIN_JUSTIFICATION:
        raise ExemptionError(f"an exemption needs a justification of at least {MIN_JUSTIFICATION} characters")
    if expires_at <= now:
        raise ExemptionError(f"expiry {expires_at.isoformat()} is not in the future")
    if expires_at - now > MAX_DURATION:
        raise ExemptionError(f"an exemption may last at most {MAX_DURATION.days} days; renew it when it expires")
    if known_checks is not None and check_id not in known_checks:
        raise ExemptionError(f"unknown check {check_id!r}")
    return {
        "exemption_id": uuid.uuid4().hex[:12],
        "entity_ref": entity_ref,
        "check_id": check_id,
        "justification": justification.strip(),
        "author": author.strip(),
        "created_at": now.isoformat(),
        "expires_at": expires_at.isoformat(),
        "revoked_at": None,
        "revoked_by": None,
        "revoke_reason": None,
    }


def revoke(register: pd.DataFrame, exemption_id: str, *, author: str, reason: str, now: datetime) -> pd.DataFrame:
    """The register with one exemption revoked; raises if it does not exist or is already revoked."""
    match = register["exemption_id"] == exemption_id
    if not match.any():
        raise ExemptionError(f"no exemption {exemption_id!r}")
    if register.loc[match, "revoked_at"].notna().any():
        raise ExemptionError(f"exemption {exemption_id!r} is already revoked")
    out = register.copy().astype({"revoked_at": object, "revoked_by": object, "revoke_reason": object})
    out.loc[match, ["revoked_at", "revoked_by", "revoke_reason"]] = [_utc(now).isoformat(), author, reason]
    return out


def status(register: pd.DataFrame, now: datetime) -> pd.Series:
    """active / expired / revoked for each row of the register."""
    stamp = pd.Timestamp(_utc(now))
    expires = pd.to_datetime(register["expires_at"], utc=True, format="ISO8601")
    revoked = pd.to_datetime(register["revoked_at"], utc=True, format="ISO8601")
    return pd.Series(["revoked" if pd.notna(r) and r <= stamp else "expired" if e <= stamp else "active" for e, r in zip(expires, revoked, strict=True)], index=register.index)
