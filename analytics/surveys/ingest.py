"""Survey exports in, validated and pseudonymised wave responses out.

Survey tools export one row per response, one column per question (CSV), or a list of response
records (JSON, with the answers flat or under `answers`); `catalog_pipelines.services.surveys.
read_export` reads each file into an `ExportTable` (this module does no file I/O). Validation
reports every problem as a `RowError` naming the file, the row (spreadsheet numbering: the header
is row 1; for JSON, the record's 1-based position) and the column, and keeps what is valid:

- a file without a respondent column is rejected whole; a missing question column is reported once
  and that question counts as unanswered in the file;
- an out-of-range or unreadable answer is reported and dropped; the rest of the row lands;
- a row without a respondent, from someone who is not a catalog user, not in a team or not invited,
  or with no valid answer, is reported and dropped;
- several responses from one person in a wave: the latest submission lands, the others are reported.

Respondents are matched to catalog users (by ref, name or e-mail), assigned their team, and then
replaced by a keyed HMAC token (`analytics.pseudonymise`): raw identifiers never leave this module,
and error messages never repeat them. Free text from respondents who did not consent is dropped here,
before anything is stored.

Team assignment: the team recorded on the wave's invitation list when it has one (the org as it was
when the wave ran), otherwise the respondent's catalog team at ingestion time. A person in several
groups counts in one, their primary team: a group of type `team` first, then the deepest group, then
the first by ref. Counting each person once per level is what keeps a parent's figure an exact
combination of its children's, which the anonymity rules depend on.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from analytics.org import OrgGraph
from analytics.pseudonymise import pseudonymise_series
from analytics.surveys.config import CONSENT, RESPONDENT, TEAM, Question, SurveyDefinition, Wave
from analytics.surveys.formats import TOOL_COLUMNS, Layout, choice_cells, option_columns
from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref

# Tokens for survey respondents are domain-separated from other areas' tokens (same key), so survey
# answers cannot be joined to, say, portal usage by token.
TOKEN_DOMAIN = "surveys|"
RESPONDENT_ALIASES = (
    "email", "email address", "e-mail", "respondent", "respondent id", "respondent_id", "respondent email",
    "recipientemail", "recipient email", "user", "username", "user_ref", "login",
)
CONSENT_ALIASES = ("free_text_consent", "consent", "comment consent", "share comments")
SUBMITTED_ALIASES = ("submitted_at", "submitted at", "submitdate", "submit date", "enddate", "end date", "timestamp", "completed at", "completed_at", "completion time")
GROUP_ALIASES = ("group", "team", "group_ref", "team_ref")
NOT_ANSWERED = frozenset({"", "n/a", "na", "-", "skipped", "prefer not to say", "no answer", "null", "none"})
TRUE_VALUES = frozenset({"yes", "y", "true", "1", "x", "consent", "agreed", "i agree", "on"})
FALSE_VALUES = frozenset({"no", "n", "false", "0", "", "off", "declined"})
MAX_TEXT = 10_000
_SPLIT = re.compile(r"\s*[;|]\s*")


@dataclass(frozen=True)
class RowError:
    """One problem in an export, precise enough to find and fix it."""

    file: str
    row: int | None
    column: str | None
    kind: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column:
            where += f", column '{self.column}'"
        return f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "row": self.row, "column": self.column, "kind": self.kind, "message": self.message}


@dataclass
class ValidatedFile:
    """One export after validation: typed answers plus the raw respondent key (never stored)."""

    frame: pd.DataFrame  # _file, _row, _who (raw identifier), _submitted, consent, <question ids>
    errors: list[RowError]
    rows_read: int


@dataclass
class WaveIngest:
    responses: pd.DataFrame  # respondent (token), team_ref, consent, <question ids>
    invited: pd.DataFrame  # team_ref, invited
    errors: list[RowError]
    stats: dict[str, int] = field(default_factory=dict)

    def error_counts(self) -> dict[str, int]:
        return dict(Counter(e.kind for e in self.errors))


def _norm(header: Any) -> str:
    return " ".join(str(header).strip().casefold().split())


def _find_column(columns: Iterable[str], *candidates: str | None, layout: Layout | None = None) -> str | None:
    """The first column (in candidate order) any of whose names is a candidate: its header, and with
    a tool's layout also its ids and question texts."""
    lookup: dict[str, str] = {}
    for c in columns:
        for name in (layout.names(c) if layout else (c,)):
            lookup.setdefault(_norm(name), c)
    for cand in candidates:
        if cand and _norm(cand) in lookup:
            return lookup[_norm(cand)]
    return None


# --- exports as read -----------------------------------------------------------------------------


@dataclass
class ExportTable:
    """One export as `catalog_pipelines.services.surveys.read_export` read it: every cell a
    string plus `_row` (spreadsheet numbering for CSV: the header is row 1; for JSON, the record's
    1-based position), or `frame` None and the error saying why the file could not be read."""

    name: str  # the file name every RowError of this export names
    frame: pd.DataFrame | None
    errors: list[RowError] = field(default_factory=list)
    layout: Layout = field(default_factory=Layout)  # the tool's layout (`analytics.surveys.formats`)

    @classmethod
    def unreadable(cls, name: str, reason: Any) -> ExportTable:
        return cls(name, None, [RowError(name, None, None, "unreadable_file", f"cannot read the export: {reason}")])


# --- validating ---------------------------------------------------------------------------------


def validate_export(export: ExportTable, survey: SurveyDefinition) -> ValidatedFile:
    """Validate one export against the survey's questions (no catalog needed)."""
    raw, errors, name = export.frame, list(export.errors), export.name
    if raw is None:
        return ValidatedFile(_empty_validated(survey), errors, 0)
    rows = raw["_row"].to_numpy()
    out = pd.DataFrame({"_file": name, "_row": rows})
    not_object = raw["_not_an_object"].eq("1").to_numpy() if "_not_an_object" in raw.columns else np.zeros(len(raw), bool)
    errors += [RowError(name, int(r), None, "invalid_value", "the record is not an object; it was dropped") for r in rows[not_object]]
    layout = export.layout
    columns = [c for c in raw.columns if c not in ("_row", "_not_an_object")]
    who_col = _find_column(columns, survey.export.respondent_column, *RESPONDENT_ALIASES, layout=layout)
    if who_col is None:
        errors.append(
            RowError(name, None, survey.export.respondent_column, "missing_column",
                     f"no respondent column (expected '{survey.export.respondent_column}' or one of: {', '.join(RESPONDENT_ALIASES)}); "
                     "the file was not loaded")
        )
        return ValidatedFile(_empty_validated(survey), errors, len(raw))
    out["_who"] = raw[who_col].str.strip().to_numpy()
    sub_col = _find_column(columns, survey.export.submitted_column, *SUBMITTED_ALIASES, layout=layout)
    # Only used to keep a person's latest submission; never stored (a timestamp can identify).
    out["_submitted"] = (
        pd.to_datetime(raw[sub_col].str.replace(r"\s+GMT([+-]\d+)?$", "", regex=True), errors="coerce", utc=True, format="mixed")
        if sub_col
        else pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns, UTC]")
    )
    consent_col = _find_column(columns, survey.export.consent_column, *CONSENT_ALIASES, layout=layout)
    if consent_col:
        values = raw[consent_col].str.strip().str.lower()
        if layout.choice_numbers:
            values = values.where(values != "2", "no")  # Qualtrics numbers Yes/No as 1/2
        yes = values.isin(TRUE_VALUES).to_numpy()
        bad = ~(yes | values.isin(FALSE_VALUES).to_numpy())
        errors += [
            RowError(name, int(r), consent_col, "invalid_value", f"consent value {v!r} is not yes/no; treated as no consent")
            for r, v in zip(rows[bad], raw[consent_col].to_numpy()[bad])
        ]
        out[CONSENT] = yes
    else:
        out[CONSENT] = False
    used = {who_col, sub_col, consent_col}
    for q in survey.questions:
        cells, col = question_cells(raw, columns, q, layout, survey.export.match)
        if cells is None:
            errors.append(
                RowError(name, None, q.column or q.id, "missing_column",
                         f"question '{q.id}' has no column in this file; its answers count as not given")
            )
            out[q.id] = _empty_answers(q, len(raw))
            continue
        used.update(col)
        values, problems = _validate_question(q, cells)
        out[q.id] = values
        errors += [RowError(name, int(rows[i]), col[0] if len(col) == 1 else q.text, kind, msg) for i, kind, msg in problems]
    unmapped = [c for c in columns if c not in used and _norm(c) not in TOOL_COLUMNS and not (set(map(_norm, layout.names(c))) & TOOL_COLUMNS)]
    if unmapped:
        shown = ", ".join(repr(c) + (f" ({layout.texts[c][0]})" if layout.texts.get(c) else "") for c in unmapped[:10])
        errors.append(
            RowError(name, None, None, "unmapped_column",
                     f"{len(unmapped)} column(s) match no question of survey '{survey.id}' and were ignored: {shown}"
                     + (" ..." if len(unmapped) > 10 else ""))
        )
    if not_object.any():
        out = out.loc[~not_object].reset_index(drop=True)
    return ValidatedFile(out, errors, len(raw))


def question_cells(raw: pd.DataFrame, columns: list[str], q: Question, layout: Layout, match: str) -> tuple[pd.Series | None, list[str]]:
    """A question's cells in the generic form and the export columns they came from, or (None, [])
    when no column matches. `match` (the survey's `export.match`): `id` compares the question's
    `column`, id and `ids` with column ids (header, Qualtrics ImportId); `text` its text and `texts`
    with question texts (the header of single-row layouts, Qualtrics' second row, SurveyMonkey's
    first); `id_or_text` tries ids first."""
    by_id = [q.column, q.id, *q.ids] if match in ("id", "id_or_text") else []
    by_text = [q.text, *q.texts] if match in ("text", "id_or_text") else []
    wanted = {_norm(c) for c in (*by_id, *by_text) if c}
    if q.type == "multi_choice" and layout.option_of:
        # SurveyMonkey: one column per option under the question's text
        options = {_norm(o): o for o in q.options}
        found = {c: options.get(_norm(layout.option_of[c]), layout.option_of[c]) for c in columns
                 if c in layout.option_of and wanted & {_norm(t) for t in layout.texts.get(c, ())}}
        if found:
            return option_columns(raw, found), list(found)
    for candidates, kind in ((by_id, "id"), (by_text, "text")):
        for cand in candidates:
            if not cand:
                continue
            for c in columns:
                if kind == "id":  # a Qualtrics text entry's ImportId is QIDn_TEXT
                    names = (c, *layout.ids.get(c, ()), *(i.removesuffix("_TEXT") for i in layout.ids.get(c, ())))
                else:  # Qualtrics' first row holds ids, not texts
                    names = (*(() if layout.name == "qualtrics" else (c,)), *layout.texts.get(c, ()))
                if _norm(cand) in {_norm(n) for n in names}:
                    cells = raw[c]
                    if q.type in ("single_choice", "multi_choice"):
                        cells = choice_cells(cells, q.options, layout, q.type == "multi_choice")
                    return cells, [c]
    return None, []


def _empty_validated(survey: SurveyDefinition) -> pd.DataFrame:
    frame = pd.DataFrame({"_file": pd.Series([], dtype=str), "_row": pd.Series([], dtype=np.int64), "_who": pd.Series([], dtype=str),
                          "_submitted": pd.Series([], dtype="datetime64[ns, UTC]"), CONSENT: pd.Series([], dtype=bool)})
    for q in survey.questions:
        frame[q.id] = _empty_answers(q, 0)
    return frame


def _empty_answers(q: Question, n: int) -> pd.Series:
    if q.type in ("likert", "nps"):
        return pd.Series(pd.array([pd.NA] * n, dtype="Int8"))
    if q.type == "multi_choice":
        return pd.Series(pd.array([pd.NA] * n, dtype="Int32"))
    return pd.Series(pd.array([pd.NA] * n, dtype="string"))


def _validate_question(q: Question, raw: pd.Series) -> tuple[pd.Series, list[tuple[int, str, str]]]:
    """Typed answers (NA = not answered) and (position, kind, message) for each bad cell."""
    s = raw.astype(str).str.strip()
    problems: list[tuple[int, str, str]] = []
    if q.type in ("likert", "nps"):
        lo, hi = q.scale  # type: ignore[misc]
        numeric = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan, copy=True)
        # Only the few non-numeric cells need string work: blanks, "N/A", Likert labels, garbage.
        text_pos = np.flatnonzero(np.isnan(numeric))
        lower_text = s.iloc[text_pos].str.lower()
        missing = np.zeros(len(s), dtype=bool)
        missing[text_pos] = lower_text.isin(NOT_ANSWERED).to_numpy()
        labels = {label.casefold(): float(i + 1) for i, label in enumerate(q.labels)}
        if labels and len(text_pos):
            numeric[text_pos] = lower_text.map(labels).to_numpy(dtype="float64", na_value=np.nan)
        not_number = ~missing & np.isnan(numeric)
        with np.errstate(invalid="ignore"):
            out_of_range = ~missing & ~np.isnan(numeric) & ((numeric < lo) | (numeric > hi) | (numeric != np.floor(numeric)))
        scale = f"a whole number from {lo} to {hi}" + (" or one of its labels" if labels else "")
        problems += [(int(i), "invalid_value", f"{s.iat[i]!r} is not {scale}") for i in np.flatnonzero(not_number)]
        problems += [(int(i), "out_of_range", f"{s.iat[i]!r} is outside {lo}..{hi}") for i in np.flatnonzero(out_of_range)]
        valid = ~missing & ~not_number & ~out_of_range
        values = pd.array(np.where(valid, numeric, np.nan), dtype="Float64").astype("Int8")
        return pd.Series(values), problems
    lower = s.str.lower()
    missing = lower.isin(NOT_ANSWERED).to_numpy()
    if q.type == "single_choice":
        options = {o.casefold(): o for o in q.options}
        mapped = lower.map(options)
        bad = ~missing & mapped.isna().to_numpy()
        problems += [(int(i), "invalid_value", f"{s.iat[i]!r} is not one of the options: {', '.join(q.options)}") for i in np.flatnonzero(bad)]
        return pd.Series(pd.array(np.where(missing | bad, None, mapped.to_numpy(dtype=object)), dtype="string")), problems
    if q.type == "multi_choice":
        index = {o.casefold(): i for i, o in enumerate(q.options)}
        mask = np.zeros(len(s), dtype=np.int64)
        answered = np.zeros(len(s), dtype=bool)
        positions = np.flatnonzero(~missing)
        if positions.size:
            tokens = lower.iloc[positions].str.split(_SPLIT).explode()
            tokens = tokens[tokens.str.len() > 0]
            bit = tokens.map(index)
            unknown = tokens[bit.isna()]
            for pos, token in unknown.groupby(level=0).agg(list).items():
                problems.append((int(pos), "invalid_value", f"{', '.join(map(repr, token))} not among the options: {', '.join(q.options)}"))
            known = bit.dropna().astype(np.int64)
            if len(known):
                pos = known.index.to_numpy(dtype=np.int64)
                np.bitwise_or.at(mask, pos, np.left_shift(np.int64(1), known.to_numpy()))
                answered[pos] = True
        return pd.Series(pd.array(np.where(answered, mask, np.nan), dtype="Float64").astype("Int32")), problems
    # free text
    too_long = (s.str.len() > MAX_TEXT).to_numpy() & ~missing
    problems += [(int(i), "invalid_value", f"free text longer than {MAX_TEXT} characters was dropped") for i in np.flatnonzero(too_long)]
    return pd.Series(pd.array(np.where(missing | too_long, None, s.to_numpy(dtype=object)), dtype="string")), problems


# --- respondents --------------------------------------------------------------------------------


class RespondentDirectory:
    """Maps what an export calls a respondent (ref, name or e-mail) to a catalog user and a team."""

    def __init__(self, org: OrgGraph, users: Iterable[dict[str, Any]] = ()) -> None:
        self.org = org
        keys: dict[str, str | None] = {}

        def add(key: Any, ref: str) -> None:
            if not key:
                return
            key = str(key).strip().lower()
            # A key shared by two users (a name in two namespaces) identifies neither.
            keys[key] = ref if keys.get(key, ref) == ref else None

        refs = set(org.users) | {u for members in org.direct_members.values() for u in members}
        for ref in refs:
            add(ref, ref)
            kind_ns_name = ref.split(":", 1)[-1]
            add(kind_ns_name, ref)
            add(kind_ns_name.split("/", 1)[-1], ref)
        for entity in users:
            if str(entity.get("kind", "")).lower() != "user":
                continue
            meta = entity.get("metadata") or {}
            try:
                ref = parse_entity_ref({"kind": "user", "namespace": meta.get("namespace") or "default", "name": meta.get("name")}).canonical()
            except EntityRefError:
                continue
            profile = (entity.get("spec") or {}).get("profile") or {}
            add(profile.get("email"), ref)
            add(ref, ref)
        self.keys = keys
        self.primary_team = primary_teams(org)

    def resolve(self, values: pd.Series) -> tuple[pd.Series, np.ndarray]:
        """(user refs with NA where unmatched, mask of values that matched several users)."""
        lowered = values.astype(str).str.strip().str.lower()
        mapped = lowered.map(self.keys)
        ambiguous = (lowered.isin([k for k, v in self.keys.items() if v is None]) & mapped.isna()).to_numpy()
        return mapped, ambiguous


def primary_teams(org: OrgGraph) -> dict[str, str]:
    """Each member's one team: a group of type `team` first, then the deepest group, then by ref."""
    members = org.membership_frame()
    if not len(members):
        return {}
    groups = members["group_ref"].unique()
    depth = {g: len(org.ancestors(g)) for g in groups}
    is_team = {g: str((org.groups.get(g) or {}).get("type") or "").lower() == "team" for g in groups}
    members = members.assign(
        _team=members["group_ref"].map(is_team).astype(bool), _depth=members["group_ref"].map(depth).astype(np.int64)
    )
    members = members.sort_values(["user_ref", "_team", "_depth", "group_ref"], ascending=[True, False, False, True], kind="stable")
    first = members.drop_duplicates("user_ref", keep="first")
    return dict(zip(first["user_ref"], first["group_ref"]))


def population(org: OrgGraph, directory: RespondentDirectory, wave: Wave) -> dict[str, str]:
    """Invited users → team for a wave without an invitation list: members of the wave's population
    groups (recursively), or every user with a team."""
    if wave.population_groups:
        users = set().union(*(org.members(g) for g in wave.population_groups))
    else:
        users = set(directory.primary_team)
    return {u: directory.primary_team[u] for u in users if u in directory.primary_team}


def resolve_invited(export: ExportTable, survey: SurveyDefinition, directory: RespondentDirectory) -> tuple[dict[str, str], list[RowError], int]:
    """An invitation list: respondent column (same names as the export) and optionally the team
    each person was in when the wave ran. Returns (user → team, errors, rows without a catalog user)."""
    raw, errors, name = export.frame, list(export.errors), export.name
    if raw is None:
        return {}, errors, 0
    who_col = _find_column(raw.columns, survey.export.respondent_column, *RESPONDENT_ALIASES)
    if who_col is None:
        errors.append(RowError(name, None, survey.export.respondent_column, "missing_column", "no respondent column; the invitation list was ignored"))
        return {}, errors, 0
    users, ambiguous = directory.resolve(raw[who_col])
    rows = raw["_row"].to_numpy()
    matched = users.notna().to_numpy()
    errors += [
        RowError(name, int(r), who_col, "unknown_respondent", "the identifier matches more than one catalog user")
        for r in rows[~matched & ambiguous]
    ]
    team = users.map(directory.primary_team)
    group_col = _find_column(raw.columns, *GROUP_ALIASES)
    if group_col:
        known_groups = directory.org.all_groups()
        values = raw[group_col].astype(str).str.strip()
        refs = {}
        for value in values.unique():
            try:
                ref = parse_entity_ref(value, default_kind="group").canonical() if value else None
            except EntityRefError:
                ref = None
            refs[value] = ref if ref in known_groups else None
        recorded = values.map(refs)
        bad = (values != "").to_numpy() & recorded.isna().to_numpy()
        errors += [
            RowError(name, int(r), group_col, "invalid_value", f"{v!r} is not a catalog group; using the catalog team")
            for r, v in zip(rows[bad], values.to_numpy()[bad])
        ]
        team = recorded.where(recorded.notna(), team)
    ok = matched & team.notna().to_numpy()
    invited = dict(zip(users[ok], team[ok]))
    unmatched = int((~matched).sum())
    return invited, errors, unmatched


# --- a wave ---------------------------------------------------------------------------------------


def ingest_wave(
    survey: SurveyDefinition,
    wave: Wave,
    exports: list[ExportTable],
    directory: RespondentDirectory,
    key: bytes,
    invited_list: ExportTable | None = None,
) -> WaveIngest:
    """Validate every export of a wave, resolve and pseudonymise respondents, dedupe."""
    errors: list[RowError] = []
    invited_unmatched = 0
    if invited_list is not None:
        invited_map, inv_errors, invited_unmatched = resolve_invited(invited_list, survey, directory)
        errors += inv_errors
        explicit = True
    else:
        invited_map, explicit = population(directory.org, directory, wave), False

    parts, rows_read = [], 0
    for export in exports:
        validated = validate_export(export, survey)
        errors += validated.errors
        rows_read += validated.rows_read
        parts.append(validated.frame)
    frame = pd.concat(parts, ignore_index=True) if parts else _empty_validated(survey)
    question_ids = [q.id for q in survey.questions]

    drop = np.zeros(len(frame), dtype=bool)

    def reject(mask: np.ndarray, kind: str, message: str, column: str | None = None) -> None:
        nonlocal drop
        new = mask & ~drop
        errors.extend(RowError(f, int(r), column, kind, message) for f, r in zip(frame["_file"].to_numpy()[new], frame["_row"].to_numpy()[new]))
        drop |= new

    who = frame["_who"].fillna("").astype(str)
    reject((who.str.strip() == "").to_numpy(), "missing_respondent", "no respondent identifier; the row was dropped", survey.export.respondent_column)
    users, ambiguous = directory.resolve(who)
    unmatched = users.isna().to_numpy()
    reject(unmatched & ambiguous, "unknown_respondent", "the respondent matches more than one catalog user; the row was dropped")
    reject(unmatched, "unknown_respondent", "the respondent is not a catalog user; the row was dropped")
    if explicit:
        reject(~users.isin(list(invited_map)).to_numpy(), "not_invited", "the respondent is not on the wave's invitation list; the row was dropped")
        team_of = invited_map
    else:
        team_of = {**directory.primary_team, **invited_map}
    teams = users.map(team_of)
    reject(teams.isna().to_numpy(), "no_team", "the respondent is not a member of any catalog group; the row was dropped")
    answered = np.zeros(len(frame), dtype=bool)
    for q in question_ids:
        answered |= frame[q].notna().to_numpy()
    reject(~answered, "empty_response", "the response has no valid answer; the row was dropped")

    # Duplicates: keep each person's latest submission (file order breaks ties).
    order = pd.DataFrame({"user": users, "submitted": frame["_submitted"], "pos": np.arange(len(frame))})[~drop]
    order = order.sort_values(["user", "submitted", "pos"], na_position="first", kind="stable")
    kept = order.drop_duplicates("user", keep="last").set_index("user")["pos"]
    dup_pos = order["pos"][order.duplicated("user", keep="last")].to_numpy()
    for pos in dup_pos:
        keep_pos = kept[users.iat[pos]]
        errors.append(
            RowError(frame["_file"].iat[pos], int(frame["_row"].iat[pos]), None, "duplicate_respondent",
                     f"another response from the same respondent (kept the later one: {frame['_file'].iat[keep_pos]} row {frame['_row'].iat[keep_pos]}); this row was dropped")
        )
    drop[dup_pos] = True

    land = frame.loc[~drop].reset_index(drop=True)
    land_users = users[~drop].reset_index(drop=True)
    responses = pd.DataFrame(
        {
            RESPONDENT: pseudonymise_series(TOKEN_DOMAIN + land_users.astype(str), key).astype("string"),
            TEAM: land_users.map(team_of).astype("string"),
            CONSENT: land[CONSENT].astype(bool),
        }
    )
    for q in survey.questions:
        values = land[q.id].reset_index(drop=True)
        if q.type == "free_text":
            values = values.where(responses[CONSENT], pd.NA)
        responses[q.id] = values
    if not len(responses):
        responses = responses.astype({RESPONDENT: "string", TEAM: "string", CONSENT: bool})

    counts = Counter(invited_map.values())
    invited = pd.DataFrame({TEAM: list(counts), "invited": list(counts.values())}).astype({TEAM: "string", "invited": np.int64})
    stats = {
        "files": len(exports),
        "rows_read": rows_read,
        "rows_landed": len(responses),
        "rows_dropped": int(drop.sum()),
        "respondents": int(responses[RESPONDENT].nunique()),
        "invited": int(sum(counts.values())),
        "invited_unmatched": invited_unmatched,
        "errors": len(errors),
    }
    return WaveIngest(responses, invited, errors, stats)
