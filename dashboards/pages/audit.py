"""The audit page: admin (ingestion) and scorecard-exemption actions, for admins (`audit.read`)."""

from __future__ import annotations

from typing import Any

import orjson
import pandas as pd

from dashboards import figures as F
from dashboards.access import ALL
from dashboards.html import Doc
from dashboards.pages.base import Ctx, PageOut, max_time

PERMISSION = "audit.read"
LIMIT = 2000


def _summary(details: Any) -> str:
    if isinstance(details, str):
        try:
            details = orjson.loads(details)
        except orjson.JSONDecodeError:
            return details[:200]
    if not isinstance(details, dict):
        return ""
    shown = {k: v for k, v in details.items() if k not in ("channel", "result")}
    text = ", ".join(f"{k}={v}" for k, v in shown.items())
    return text[:300]


def _channel(details: Any) -> str | None:
    if isinstance(details, str):
        try:
            details = orjson.loads(details)
        except orjson.JSONDecodeError:
            return None
    return details.get("channel") if isinstance(details, dict) else None


def audit_page(ctx: Ctx) -> PageOut:
    out = ctx.page("audit", "Audit log", "audit.html",
                   "Who operated ingestion and who granted or revoked scorecard exemptions, with the outcome.",
                   [])
    if not ctx.access.all(PERMISSION):
        return ctx.denied(out, PERMISSION)
    audit = ctx.inputs.audit
    if audit is None or not len(audit):
        out.status, out.reason = "no-data", "no data yet: no admin or exemption action has been audited"
        return out
    out.sources = ["audit_log (written by the admin operations and exemptions)"]
    out.data_as_of = max_time(audit, "at")
    audit = audit.sort_values("at", ascending=False)
    doc = Doc(stem="audit")
    doc.kpis([("actions", len(audit), ""), ("denied", int((audit["outcome"] == "denied").sum()), "refused by the policy"),
              ("failed", int((audit["outcome"] == "failure").sum()), ""), ("actors", audit["actor"].nunique(), "")])
    per_day = audit.assign(day=pd.to_datetime(audit["at"]).dt.date.astype(str)).groupby(["day", "outcome"]).size().unstack(fill_value=0).sort_index()
    doc.figure(F.bars(per_day.index, {o: per_day[o].tolist() for o in per_day.columns}, stacked=True,
                      colors={"success": F.OK, "denied": F.BAD, "failure": F.WARN},
                      title="Audited actions per day, by outcome", xtitle="Day (UTC)", ytitle="Actions (count)"))
    by_action = audit.groupby(["action", "outcome"]).size().unstack(fill_value=0)
    doc.figure(F.bars(by_action.index, {o: by_action[o].tolist() for o in by_action.columns}, stacked=True, horizontal=True,
                      colors={"success": F.OK, "denied": F.BAD, "failure": F.WARN},
                      title="Audited actions by kind", xtitle="Actions (count)", ytitle="Action"))
    table = audit.head(LIMIT).assign(channel=audit["details"].map(_channel), summary=audit["details"].map(_summary))
    doc.frame_table(table, [("at", "When (UTC)", "date"), ("actor", "Actor", "text"), ("action", "Action", "text"),
                            ("target", "Target", "text"), ("outcome", "Outcome", "text"), ("channel", "Door", "text"),
                            ("summary", "Details", "text")], caption="Audit log, newest first", total=len(audit))
    out.partial = not ctx.access.all(PERMISSION) and ctx.access.level(PERMISSION) != ALL
    out.doc = doc
    return out
