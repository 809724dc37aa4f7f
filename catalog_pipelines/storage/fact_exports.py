"""Fact exports on disk: one directory per source of `*.json`, `*.jsonl` and `*.csv` files.

Layout under the drop directory (`CATALOG_PIPELINES_FACT_EXPORTS`, else `<data_dir>/fact_exports`;
`docs/scorecards.md` has the formats)::

    <source>/<YYYY-MM-DD>.<json|jsonl|csv>      what the source's tool exported that day

Reading turns a source's files into one frame of raw records (`read_export_dir`), which
`services.facts.summarise_export_dir` prepares and summarises with `analytics.facts.collect`.
`write_exports` writes exports in the formats it is given (the synthetic ones of the demo,
benchmarks and tests). No analytics here: storage reads and writes, the services compose.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import orjson
import pandas as pd



def read_export_dir(directory: Path | str) -> tuple[pd.DataFrame, list[str]]:
    """Every `*.json`, `*.jsonl` and `*.csv` file in `directory`, as one frame of raw records.

    Files are read in name order (exporters name them by date), each record tagged with its file
    (`_file`), so that a later record can replace an earlier one with the same key
    (`analytics.facts.collect.prepare_export_records`). Returns the frame and the files read.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return pd.DataFrame(), []
    frames: list[pd.DataFrame] = []
    files: list[str] = []
    for path in sorted(directory.iterdir()):
        suffix = path.suffix.lower()
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
        elif suffix == ".jsonl":
            frame = pd.DataFrame.from_records([orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()])
        elif suffix == ".json":
            data = orjson.loads(path.read_bytes())
            if isinstance(data, dict):
                data = data.get("records", [])
            if not isinstance(data, list):
                raise ValueError(f"{path}: expected a JSON array of records or {{\"records\": [...]}}")
            frame = pd.DataFrame.from_records(data)
        else:
            continue
        frame["_file"] = path.name
        frames.append(frame)
        files.append(path.name)
    if not frames:
        return pd.DataFrame(), []
    return pd.concat(frames, ignore_index=True), files


def write_exports(exports: dict[str, dict[date, pd.DataFrame]], directory: Path | str, *, formats: dict[str, str], keep_days: int = 35) -> list[Path]:
    """Write `<directory>/<source>/<YYYY-MM-DD>.<json|jsonl|csv>` in each source's format; drop
    exports older than `keep_days`."""
    directory = Path(directory)
    written: list[Path] = []
    for source, by_day in exports.items():
        target = directory / source
        target.mkdir(parents=True, exist_ok=True)
        fmt = formats[source]
        for day, records in by_day.items():
            path = target / f"{day.isoformat()}.{fmt}"
            tmp = path.with_suffix(path.suffix + ".tmp")
            if fmt == "csv":
                records.to_csv(tmp, index=False)
            else:
                # pandas' C JSON writer: NaN/None become null, numpy scalars stay numbers.
                records.to_json(tmp, orient="records", lines=fmt == "jsonl", date_format="iso")
            tmp.replace(path)  # readers never see a half-written export
            written.append(path)
        if by_day:
            newest = max(by_day)
            for old in target.iterdir():
                try:
                    day = date.fromisoformat(old.stem)
                except ValueError:
                    continue
                if (newest - day).days >= keep_days:
                    old.unlink()
    return written
