"""Survey tools' export layouts: recognise them when reading, and write them for the synthetic tool.

An export arrives as a grid of text cells (`storage.surveys_store.read_export_grid`: CSV or Excel,
every cell a string, no header interpreted). `export_table` recognises the layout from the header
rows, takes those rows off (they are never responses) and names every column with everything the
tool says about it, so that questions can be mapped by id or by text:

| layout | header | a column's names | multiple choice |
| --- | --- | --- | --- |
| `qualtrics` | 3 rows: column ids (`Q1`), question texts, `{"ImportId":"QID1"}` | id, ImportId / text | one cell, `,`-separated; numeric variant: choice numbers |
| `surveymonkey` | 2 rows: question texts (once over a question's columns), sub-answers (`Response`, `Open-Ended Response`, an option) | question text, `text - sub` | one column per option, the option's text when chosen |
| `google_forms` | 1 row, starting with `Timestamp` | question text | one cell, `, `-separated |
| `microsoft_forms` | 1 row with `ID`, `Start time`, `Completion time` (Excel) | question text | one cell, `;`-separated with a trailing `;` |
| `generic` | 1 row | header | one cell, `;` or `|`-separated, or a JSON list |

Qualtrics exports choices as their texts ("choice text") or as their numbers ("numeric values", the
choices' recode values; this module assumes Qualtrics' default, the choice's position 1..n). The
variant is read from the `Finished` column (`True`/`False` vs `1`/`0`). No file I/O here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from analytics.surveys.config import SurveyDefinition
    from analytics.surveys.ingest import ExportTable

QUALTRICS, SURVEYMONKEY, GOOGLE_FORMS, MICROSOFT_FORMS, GENERIC = "qualtrics", "surveymonkey", "google_forms", "microsoft_forms", "generic"
LAYOUTS = (QUALTRICS, SURVEYMONKEY, GOOGLE_FORMS, MICROSOFT_FORMS, GENERIC)
HEADER_ROWS = {QUALTRICS: 3, SURVEYMONKEY: 2, GOOGLE_FORMS: 1, MICROSOFT_FORMS: 1, GENERIC: 1}
SURVEYMONKEY_PLAIN_SUBS = frozenset({"", "response", "open-ended response"})

# The tools' own columns (not questions): never reported as unmapped.
QUALTRICS_META = (
    ("StartDate", "Start Date", "startDate"), ("EndDate", "End Date", "endDate"), ("Status", "Response Type", "status"),
    ("IPAddress", "IP Address", "ipAddress"), ("Progress", "Progress", "progress"),
    ("Duration (in seconds)", "Duration (in seconds)", "duration"), ("Finished", "Finished", "finished"),
    ("RecordedDate", "Recorded Date", "recordedDate"), ("ResponseId", "Response ID", "_recordId"),
    ("RecipientLastName", "Recipient Last Name", "recipientLastName"), ("RecipientFirstName", "Recipient First Name", "recipientFirstName"),
    ("RecipientEmail", "Recipient Email", "recipientEmail"), ("ExternalReference", "External Data Reference", "externalDataReference"),
    ("LocationLatitude", "Location Latitude", "locationLatitude"), ("LocationLongitude", "Location Longitude", "locationLongitude"),
    ("DistributionChannel", "Distribution Channel", "distributionChannel"), ("UserLanguage", "User Language", "userLanguage"),
)
SURVEYMONKEY_META = ("Respondent ID", "Collector ID", "Start Date", "End Date", "IP Address", "Email Address", "First Name", "Last Name", "Custom Data 1")
GOOGLE_FORMS_META = ("Timestamp", "Email Address", "Score")
MICROSOFT_FORMS_META = ("ID", "Start time", "Completion time", "Email", "Name", "Last modified time")
TOOL_COLUMNS = frozenset(
    " ".join(n.casefold().split())
    for n in (*(x for row in QUALTRICS_META for x in row), *SURVEYMONKEY_META, *GOOGLE_FORMS_META, *MICROSOFT_FORMS_META,
              "response_id", "response id")
)


@dataclass(frozen=True)
class Layout:
    """What `export_table` learnt from the header: the layout and each column's names."""

    name: str = GENERIC
    ids: dict[str, tuple[str, ...]] = field(default_factory=dict)  # column key → column id, ImportId
    texts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # column key → question text(s)
    option_of: dict[str, str] = field(default_factory=dict)  # SurveyMonkey: option column key → the option
    choice_numbers: bool = False  # Qualtrics "numeric values": choices are their numbers
    separator: str | None = None  # multiple choice in one cell: ',' (Qualtrics, Google Forms); None = ';' or '|'

    def names(self, key: str) -> tuple[str, ...]:
        return (key, *self.ids.get(key, ()), *self.texts.get(key, ()))


def _norm(value: Any) -> str:
    return " ".join(str(value).strip().casefold().split())


def detect(header: list[list[str]]) -> str:
    """The layout of an export from its first rows (cells as text)."""
    first = [_norm(c) for c in header[0]] if header else []
    if len(header) >= 3 and any(str(c).strip().startswith('{"ImportId"') for c in header[2]):
        return QUALTRICS
    if "respondent id" in first and len(header) >= 2 and any(_norm(c) in ("response", "open-ended response") for c in header[1]):
        return SURVEYMONKEY
    if {"id", "start time", "completion time"} <= set(first):
        return MICROSOFT_FORMS
    if first[:1] == ["timestamp"]:
        return GOOGLE_FORMS
    return GENERIC


def _unique(keys: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for key in keys:
        n = seen.get(key, 0)
        seen[key] = n + 1
        out.append(key if n == 0 else f"{key} ({n + 1})")
    return out


def export_table(name: str, grid: pd.DataFrame) -> "ExportTable":
    """An export grid (positional columns, every cell a string) as the ingest reads it: header rows
    taken off, `_row` in spreadsheet numbering (the first data row of a Qualtrics export is row 4),
    the layout and each column's names in `ExportTable.layout`."""
    from analytics.surveys.ingest import ExportTable, RowError

    if grid.shape[0] == 0 or grid.shape[1] == 0:
        return ExportTable(name, None, [RowError(name, None, None, "unreadable_file", "the export is empty")])
    grid = grid.fillna("").astype(str)
    head = [list(grid.iloc[i]) for i in range(min(3, len(grid)))]
    layout_name = detect(head)
    skip = HEADER_ROWS[layout_name]
    first = [str(c).strip() for c in head[0]]
    ids: dict[str, tuple[str, ...]] = {}
    texts: dict[str, tuple[str, ...]] = {}
    option_of: dict[str, str] = {}
    if layout_name == QUALTRICS:
        keys = _unique([c or f"column {i + 1}" for i, c in enumerate(first)])
        for i, key in enumerate(keys):
            import_id = _import_id(head[2][i])
            ids[key] = (import_id,) if import_id else ()
            texts[key] = (head[1][i].strip(),) if head[1][i].strip() else ()
    elif layout_name == SURVEYMONKEY:
        question, raw_keys = "", []
        subs = [str(c).strip() for c in head[1]]
        carried = []
        for i, cell in enumerate(first):
            if cell:
                question = cell
            carried.append(question)
            sub = subs[i]
            raw_keys.append(question if _norm(sub) in SURVEYMONKEY_PLAIN_SUBS else f"{question} - {sub}")
        keys = _unique([k or f"column {i + 1}" for i, k in enumerate(raw_keys)])
        for i, key in enumerate(keys):
            texts[key] = (carried[i],) if carried[i] and carried[i] != key else ()
            if _norm(subs[i]) not in SURVEYMONKEY_PLAIN_SUBS:
                option_of[key] = subs[i]
    else:
        keys = _unique([c or f"column {i + 1}" for i, c in enumerate(first)])
    body = grid.iloc[skip:].reset_index(drop=True)
    body.columns = keys
    body["_row"] = np.arange(skip + 1, skip + 1 + len(body))
    choice_numbers = False
    if layout_name == QUALTRICS and "Finished" in body.columns:
        finished = {_norm(v) for v in body["Finished"].unique()} - {""}
        choice_numbers = bool(finished) and finished <= {"0", "1"}
    separator = "," if layout_name in (QUALTRICS, GOOGLE_FORMS) else None
    layout = Layout(layout_name, ids, texts, option_of, choice_numbers, separator)
    return ExportTable(name, body, layout=layout)


def _import_id(cell: str) -> str | None:
    try:
        value = json.loads(cell)
    except ValueError:
        return None
    return str(value.get("ImportId")) if isinstance(value, dict) and value.get("ImportId") else None


# --- cells as the validator reads them -------------------------------------------------------------


def choice_cells(cells: pd.Series, options: tuple[str, ...], layout: Layout, multi: bool) -> pd.Series:
    """A choice question's cells in the generic form (option texts, several joined by ';'): choice
    numbers of Qualtrics' numeric variant become their options, and ','-separated lists are split
    on the options themselves (an option may contain a comma)."""
    if layout.choice_numbers:
        def by_number(cell: str) -> str:
            parts = [p.strip() for p in str(cell).split(",") if p.strip()]
            if not parts:
                return ""
            if all(p.isdigit() and 1 <= int(p) <= len(options) for p in parts):
                return ";".join(options[int(p) - 1] for p in parts)
            return str(cell)  # not a choice number: left for the validator to report
        return cells.map(by_number)
    if multi and layout.separator:
        sep = layout.separator
        ordered = sorted(options, key=len, reverse=True)

        def split(cell: str) -> str:
            text, out = str(cell).strip(), []
            while text:
                match = None
                for option in ordered:
                    rest = text[len(option):].lstrip()
                    if text.casefold().startswith(option.casefold()) and (not rest or rest.startswith(sep)):
                        match = option
                        break
                token = match or text.split(sep, 1)[0]
                out.append(token.strip())
                text = text[len(token):].lstrip()
                text = text[len(sep):].lstrip() if text.startswith(sep) else text
            return ";".join(t for t in out if t)
        return cells.map(split)
    return cells


def option_columns(cells: pd.DataFrame, options: dict[str, str]) -> pd.Series:
    """SurveyMonkey's multiple choice: one column per option, holding the option's text when it was
    chosen; the chosen options joined by ';' (a column's option comes from the second header row)."""
    out = pd.Series([""] * len(cells), index=cells.index, dtype=object)
    for key, option in options.items():
        chosen = cells[key].astype(str).str.strip() != ""
        out = out.where(~chosen, out.where(out == "", out + ";") + option)
    return out


# --- writing the layouts (the synthetic survey tool) -----------------------------------------------

_QUALTRICS_TZ = '{"ImportId":"%s","timeZone":"UTC"}'


def tool_export(survey: "SurveyDefinition", answers: pd.DataFrame, layout: str, identifiers: list[str], *, numeric: bool = False) -> list[list[Any]]:
    """One wave's answers as a tool writes them, cell by cell (rows of cells, header rows first).

    `answers` is `SyntheticWave.answers` (typed answers, consent, submitted_at); `identifiers` what
    the tool knows each respondent by (an e-mail). Qualtrics columns are `Q1..Qn` with ImportIds
    `QID1..` (free text `QIDn_TEXT`), the consent question last; `numeric` writes Qualtrics'
    numeric-values variant. Microsoft Forms cells stay typed (the Excel writer keeps dates as dates)."""
    questions = list(survey.questions)
    n = len(answers)
    submitted = pd.to_datetime(answers["submitted_at"], utc=True).dt.floor("s")
    started = submitted - pd.to_timedelta(180 + (np.arange(n) % 7) * 41, unit="s")
    consent = answers["consent"].to_numpy(dtype=bool)
    consent_text = survey.export.consent_column  # the consent question, as the survey names it

    def cell(q: Any, value: Any, *, text_labels: bool, sep: str, numbers: bool = False) -> str:
        if value is None or value is pd.NA or (isinstance(value, float) and np.isnan(value)):
            return ""
        if q.type == "likert":
            return q.labels[int(value) - 1] if text_labels else str(int(value))
        if q.type == "nps":
            return str(int(value))
        if q.type == "single_choice":
            return str(q.options.index(value) + 1) if numbers else str(value)
        if q.type == "multi_choice":
            chosen = [i for i in range(len(q.options)) if int(value) >> i & 1]
            return sep.join(str(i + 1) if numbers else q.options[i] for i in chosen)
        return str(value)

    columns = {q.id: answers[q.id].astype(object).where(answers[q.id].notna(), None).to_numpy() for q in questions}
    rows: list[list[Any]] = []
    if layout == QUALTRICS:
        meta_ids = [m[0] for m in QUALTRICS_META]
        q_ids = [f"Q{i + 1}" for i in range(len(questions) + 1)]
        rows.append([*meta_ids, *q_ids])
        rows.append([m[1] for m in QUALTRICS_META] + [q.text for q in questions] + [consent_text])
        imports = [(_QUALTRICS_TZ % m[2]) if m[2] in ("startDate", "endDate", "recordedDate") else '{"ImportId":"%s"}' % m[2] for m in QUALTRICS_META]
        q_imports = ['{"ImportId":"QID%d%s"}' % (i + 1, "_TEXT" if q.type == "free_text" else "") for i, q in enumerate(questions)]
        rows.append(imports + q_imports + ['{"ImportId":"QID%d"}' % (len(questions) + 1)])
        for r in range(n):
            meta = [
                started[r].strftime("%Y-%m-%d %H:%M:%S"), submitted[r].strftime("%Y-%m-%d %H:%M:%S"), "0" if numeric else "IP Address",
                f"192.0.2.{r % 250 + 1}", "100", str(int((submitted[r] - started[r]).total_seconds())), "1" if numeric else "True",
                submitted[r].strftime("%Y-%m-%d %H:%M:%S"), f"R_{r + 1:015d}", "", "", identifiers[r], "", "", "", "email", "EN",
            ]
            body = [cell(q, columns[q.id][r], text_labels=not numeric, sep=",", numbers=numeric) for q in questions]
            rows.append(meta + body + [("1" if consent[r] else "2") if numeric else ("Yes" if consent[r] else "No")])
    elif layout == SURVEYMONKEY:
        head1, head2 = list(SURVEYMONKEY_META), [""] * len(SURVEYMONKEY_META)
        for q in questions:
            if q.type == "multi_choice":
                head1 += [q.text] + [""] * (len(q.options) - 1)
                head2 += list(q.options)
            else:
                head1.append(q.text)
                head2.append("Open-Ended Response" if q.type == "free_text" else "Response")
        head1.append(consent_text)
        head2.append("Response")
        rows += [head1, head2]
        for r in range(n):
            row = [str(10_000_000_000 + r), "400000001", started[r].strftime("%m/%d/%Y %I:%M:%S %p"), submitted[r].strftime("%m/%d/%Y %I:%M:%S %p"),
                   f"192.0.2.{r % 250 + 1}", identifiers[r], "", "", ""]
            for q in questions:
                value = columns[q.id][r]
                if q.type == "multi_choice":
                    bits = 0 if value is None else int(value)
                    row += [o if bits >> i & 1 else "" for i, o in enumerate(q.options)]
                else:
                    row.append(cell(q, value, text_labels=True, sep=";"))
            row.append("Yes" if consent[r] else "No")
            rows.append(row)
    elif layout == GOOGLE_FORMS:
        rows.append(["Timestamp", "Email Address", *[q.text for q in questions], consent_text])
        for r in range(n):
            stamp = submitted[r].strftime("%Y/%m/%d %I:%M:%S %p") + " GMT"
            rows.append([stamp, identifiers[r], *[cell(q, columns[q.id][r], text_labels=False, sep=", ") for q in questions], "Yes" if consent[r] else "No"])
    elif layout == MICROSOFT_FORMS:
        rows.append(["ID", "Start time", "Completion time", "Email", "Name", *[q.text for q in questions], consent_text])
        for r in range(n):
            body = []
            for q in questions:
                value = cell(q, columns[q.id][r], text_labels=True, sep=";")
                if q.type == "multi_choice" and value:
                    value += ";"
                elif q.type == "nps" and value:
                    value = int(value)  # a number cell, as Forms writes ratings
                body.append(value)
            rows.append([r + 1, started[r].to_pydatetime().replace(tzinfo=None), submitted[r].to_pydatetime().replace(tzinfo=None),
                         identifiers[r], identifiers[r].split("@")[0], *body, "Yes" if consent[r] else "No"])
    else:
        raise ValueError(f"unknown export layout {layout!r} (one of {', '.join(LAYOUTS[:-1])})")
    return rows
