"""Where survey exports are found and where validated wave responses are kept.

Layout under a surveys root directory (the project puts it at `<data_dir>/surveys`):

    exports/<wave id>/*.csv|*.json     what the survey tool exported (any number of files)
    exports/<wave id>/invited.csv      optional invitation list (respondent [, group])
    responses/<wave id>.parquet        validated, pseudonymised responses of one wave

Response-level data stays in these Parquet files (like the portal's event data), not in the catalog
database that dashboards and the CLI read: only anonymity-filtered aggregates go there. Each wave
file carries its invited counts per team in the Parquet metadata and is replaced atomically, so a
reader sees the old wave or the new one, never half of each.

`read_export` reads one CSV/JSON export into an `analytics.surveys.ingest.ExportTable` (cells as
strings, row numbers for error messages); validation and matching are `analytics.surveys.ingest`'s.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from analytics.surveys.ingest import ExportTable
from analytics.surveys.trends import TEAM, WaveData

if TYPE_CHECKING:
    from analytics.org import OrgGraph
    from analytics.surveys.config import SurveyDefinition
    from analytics.surveys.synthetic import Scenario

INVITED_STEM = "invited"
_META_KEY = b"catalog_pipelines.surveys"


def export_dir(root: Path, wave_id: str) -> Path:
    return Path(root) / "exports" / wave_id


def response_path(root: Path, wave_id: str) -> Path:
    return Path(root) / "responses" / f"{wave_id}.parquet"


def export_files(root: Path, wave_id: str) -> tuple[list[Path], Path | None]:
    """(response export files, invitation list or None) for a wave, in name order."""
    directory = export_dir(root, wave_id)
    if not directory.is_dir():
        return [], None
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in (".csv", ".json"))
    invited = next((p for p in files if p.stem.lower() == INVITED_STEM), None)
    return [p for p in files if p != invited], invited


def read_export(path: str | Path) -> ExportTable:
    """An export file as a frame of strings with `_row` (CSV: spreadsheet numbering, the header is
    row 1; JSON: the record's 1-based position), named by its file name; an unreadable file is an
    `ExportTable` without a frame and one `unreadable_file` error."""
    path = Path(path)
    name = path.name
    try:
        if path.suffix.lower() == ".json":
            frame = _read_json(path)
        else:
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
            frame["_row"] = np.arange(2, len(frame) + 2)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        return ExportTable.unreadable(name, exc)
    frame.columns = [str(c).strip() for c in frame.columns]
    return ExportTable(name, frame)


def read_wave_exports(root: Path, wave_id: str) -> tuple[list[ExportTable], ExportTable | None]:
    """(the wave's response exports, its invitation list or None), read (see `export_files`)."""
    files, invited = export_files(root, wave_id)
    return [read_export(p) for p in files], read_export(invited) if invited is not None else None


def _read_json(path: Path) -> pd.DataFrame:
    doc = json.loads(path.read_text(encoding="utf-8-sig"))
    if isinstance(doc, dict):
        doc = doc.get("responses", doc.get("items", doc.get("data")))
    if not isinstance(doc, list):
        raise ValueError("expected a list of responses or an object with a 'responses' list")
    records = []
    for i, item in enumerate(doc):
        flat: dict[str, Any] = {"_row": i + 1}
        if isinstance(item, dict):
            answers = item.get("answers")
            for key, value in item.items():
                if key != "answers":
                    flat[str(key)] = _text(value)
            if isinstance(answers, dict):
                flat.update({str(k): _text(v) for k, v in answers.items()})
            elif isinstance(answers, list):
                for answer in answers:
                    if isinstance(answer, dict):
                        key = answer.get("question", answer.get("id", answer.get("field")))
                        value = answer.get("value", answer.get("answer", answer.get("choices")))
                        if key is not None:
                            flat[str(key)] = _text(value)
        else:
            flat["_not_an_object"] = "1"
        records.append(flat)
    frame = pd.DataFrame.from_records(records)
    for col in frame.columns:
        if col != "_row":
            frame[col] = frame[col].fillna("").astype(str)
    return frame


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ";".join(_text(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def exports_fingerprint(root: Path, wave_id: str) -> str | None:
    """Changes whenever an export of the wave is added, removed or rewritten; None without exports."""
    files, invited = export_files(root, wave_id)
    if not files:
        return None
    digest = hashlib.sha256()
    for path in [*files, *([invited] if invited else [])]:
        stat = path.stat()
        digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def write_wave(root: Path, wave_id: str, responses: pd.DataFrame, invited: pd.DataFrame, stats: dict[str, int]) -> Path:
    path = response_path(root, wave_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pandas(responses, preserve_index=False)
    extra = {"invited": invited.to_dict(orient="records"), "stats": stats}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _META_KEY: json.dumps(extra, default=int).encode()})
    tmp = path.with_suffix(f".tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


def read_wave(root: Path, wave_id: str) -> WaveData | None:
    path = response_path(root, wave_id)
    if not path.exists():
        return None
    table = pq.read_table(path)
    extra = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
    invited = pd.DataFrame(extra.get("invited") or [], columns=[TEAM, "invited"])
    return WaveData(table.to_pandas(), invited)


def read_waves(root: Path, wave_ids: list[str]) -> dict[str, WaveData]:
    out = {}
    for wave_id in wave_ids:
        data = read_wave(root, wave_id)
        if data is not None:
            out[wave_id] = data
    return out


def write_synthetic_exports(
    root: Path,
    survey: SurveyDefinition,
    org: OrgGraph,
    seed: int = 7,
    *,
    email_domain: str | None = None,
    waves: list[str] | None = None,
) -> tuple[list[Path], Scenario]:
    """Write `exports/<wave>/responses.csv` and `invited.csv` for each wave under a surveys root,
    answered by `analytics.surveys.synthetic` (the demo's, tests' and benchmarks' survey tool)."""
    from analytics.surveys.synthetic import export_frame, generate_waves, invited_frame

    generated, scenario = generate_waves(survey, org, seed, waves=waves)
    written = []
    for wave_id, wave in generated.items():
        directory = export_dir(root, wave_id)
        directory.mkdir(parents=True, exist_ok=True)
        responses, invited = directory / "responses.csv", directory / "invited.csv"
        export_frame(survey, wave, email_domain).to_csv(responses, index=False)
        invited_frame(survey, wave, email_domain).to_csv(invited, index=False)
        written += [responses, invited]
    return written, scenario
