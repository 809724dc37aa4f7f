"""Where survey exports are found and where validated wave responses are kept.

Layout under a surveys root directory (the project puts it at `<data_dir>/surveys`):

    exports/<wave id>/*.csv|*.xlsx|*.json  what the survey tool exported (any number of files)
    exports/<wave id>/invited.csv      optional invitation list (respondent [, group])
    responses/<wave id>.parquet        validated, pseudonymised responses of one wave

Response-level data stays in these Parquet files (like the portal's event data), not in the catalog
database that dashboards and the CLI read: only anonymity-filtered aggregates go there. Each wave
file carries its invited counts per team in the Parquet metadata and is replaced atomically, so a
reader sees the old wave or the new one, never half of each.

`read_export_grid` reads a CSV or Excel export as a grid of text cells (no header interpreted: the
tools' layouts are `analytics.surveys.formats`'), `read_export_frame` a JSON export (or a plain CSV)
into a frame (cells as strings, row numbers for error messages), `write_export_grid` writes a grid
as CSV or Excel (the synthetic tool), and `read_wave_frames` a stored wave; `services.surveys` wraps them in the analytics'
containers, and validation and matching are `analytics.surveys.ingest`'s. No analytics here.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

INVITED_STEM = "invited"
EXPORT_SUFFIXES = (".csv", ".xlsx", ".json")
GRID_SUFFIXES = (".csv", ".xlsx")
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
    files = sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in EXPORT_SUFFIXES and not p.name.startswith(("~$", ".~lock")))
    invited = next((p for p in files if p.stem.lower() == INVITED_STEM), None)
    return [p for p in files if p != invited], invited


# What reading an export raises when the file cannot be read as an export (the caller reports it).
UNREADABLE = (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError, KeyError)


def read_export_grid(path: str | Path) -> pd.DataFrame:
    """A CSV or Excel (`.xlsx`, first sheet) export as a grid: positional columns, every cell a
    string ("" when blank), header rows included. Excel dates become `YYYY-MM-DD HH:MM:SS`, whole
    numbers lose their `.0`. Raises one of `UNREADABLE` for a file that cannot be read."""
    path = Path(path)
    if path.suffix.lower() == ".xlsx":
        import zipfile

        import openpyxl

        try:
            book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except zipfile.BadZipFile as exc:
            raise ValueError(f"not an Excel workbook: {exc}") from None
        try:
            rows = [[_cell(v) for v in row] for row in book.worksheets[0].iter_rows(values_only=True)]
        finally:
            book.close()
        while rows and not any(rows[-1]):
            rows.pop()
        width = max((len(r) for r in rows), default=0)
        return pd.DataFrame([r + [""] * (width - len(r)) for r in rows], dtype=object).astype(str) if rows else pd.DataFrame()
    return pd.read_csv(path, header=None, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")


def _cell(value: Any) -> str:
    from datetime import datetime

    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return _text(value)


def write_export_grid(path: Path, rows: list[list[Any]]) -> Path:
    """Rows of cells as a CSV file, or an Excel workbook when `path` ends in `.xlsx`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".xlsx":
        import openpyxl

        book = openpyxl.Workbook(write_only=True)
        sheet = book.create_sheet("Sheet1")
        for row in rows:
            sheet.append(row)
        book.save(path)
    else:
        import csv

        with path.open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerows(rows)
    return path


def read_export_frame(path: str | Path) -> pd.DataFrame:
    """An export file as a frame of strings with `_row` (CSV: spreadsheet numbering, the header is
    row 1; JSON: the record's 1-based position). Raises one of `UNREADABLE` for a file that cannot
    be read as an export."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        frame = _read_json(path)
    else:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False, encoding="utf-8-sig")
        frame["_row"] = np.arange(2, len(frame) + 2)
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


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


def read_wave_frames(root: Path, wave_id: str) -> tuple[pd.DataFrame, list[dict[str, Any]]] | None:
    """(the stored responses, the invited counts per team as records) of a wave, or None."""
    path = response_path(root, wave_id)
    if not path.exists():
        return None
    table = pq.read_table(path)
    extra = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
    return table.to_pandas(), list(extra.get("invited") or [])


def write_exports(root: Path, wave_id: str, frames: dict[str, pd.DataFrame]) -> list[Path]:
    """Write `exports/<wave>/<name>.csv` for each frame (the synthetic survey tool's exports)."""
    directory = export_dir(root, wave_id)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in frames.items():
        path = directory / f"{name}.csv"
        frame.to_csv(path, index=False)
        written.append(path)
    return written
