"""Where portal usage events live on disk: daily Parquet partitions, append-only until compacted.

Layout under the raw directory (`<data_dir>/usage/raw` by default)::

    date=2025-03-04/part-<received ns>-<random>.parquet   one per flush of the collector or import
    date=2025-03-04/events.parquet                        the compacted, deduplicated day
    _rejected/date=2025-03-05/part-....jsonl              malformed events: reasons only, never payloads

Writers only ever add `part-*` files (written to a temporary name and renamed, so a reader never
sees half a file). An event lands in the partition of its own UTC day whenever it arrives, so late
events simply add a part file to an old day. `compact_day` folds the parts into `events.parquet`,
keeping the first copy of each event id: a re-sent batch is stored once. Event ids are only
deduplicated within a day, which is enough because a re-sent event carries its original timestamp.

Daily summaries (see `analytics.usage.insights.summarise_day`) sit beside it under `<data_dir>/usage/daily`,
one directory per day, and follow the same retention.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analytics.usage.events import DEFAULT_RETENTION_DAYS, RAW_SCHEMA, Rejection, prepare_events

_DAY_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
COMPACTED = "events.parquet"
PSEUDONYM_PATTERN = r"^p_[0-9a-f]{32}$"
REJECTED_DIR = "_rejected"
# What `identity_leaks` looks for outside the user column (RE2 syntax: no look-behind): a user
# entity ref (separators plain or URL-encoded) or an e-mail address (`@` plain or URL-encoded).
_PERSON_COLUMNS = ["subject", "attributes", "entity_ref"]
_RAW_PERSON_PATTERN = r"(^|[^\w%])user(:|%3a)[a-z0-9]|[a-z0-9._%+-](@|%40)[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}"
# Parquet settings: zstd is ~2x smaller than snappy on these repetitive columns and no slower to
# write; dictionary encoding only where values repeat (ids and timestamps never do, and trying costs
# ~20 % of the write).
_PARQUET = {"compression": "zstd"}
_RAW_DICTIONARY = ["user", "action", "subject", "attributes", "plugin_id", "route_ref", "extension_id", "extension", "entity_ref", "search_types"]


def day_dir_name(day: date) -> str:
    return f"date={day.isoformat()}"

def _day_dirs(root: Path) -> Iterator[tuple[date, Path]]:
    """(day, directory) of every `date=YYYY-MM-DD` directory directly under `root`, in no order."""
    if not root.exists():
        return
    for child in root.iterdir():
        match = _DAY_DIR.match(child.name)
        if match and child.is_dir():
            yield date.fromisoformat(match.group(1)), child


def _atomic_write_table(table: pa.Table, path: Path) -> None:
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    pq.write_table(table, tmp, use_dictionary=_RAW_DICTIONARY, **_PARQUET)
    os.replace(tmp, path)


def _part_name(suffix: str = "parquet") -> str:
    # Nanosecond arrival time first: sorting names sorts parts by arrival, which is what makes
    # "keep the first copy" mean "keep the copy that arrived first".
    return f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.{suffix}"


@dataclass
class IngestResult:
    accepted: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    by_day: dict[date, int] = field(default_factory=dict)

    def merge(self, other: "IngestResult") -> None:
        self.accepted += other.accepted
        self.rejected.extend(other.rejected)
        for day, n in other.by_day.items():
            self.by_day[day] = self.by_day.get(day, 0) + n

    def reason_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rejection in self.rejected:
            for reason in rejection.reasons:
                field_name = reason.split(":", 1)[0]
                counts[field_name] = counts.get(field_name, 0) + 1
        return dict(sorted(counts.items()))

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": len(self.rejected),
            "rejected_by_field": self.reason_counts(),
            "by_day": {d.isoformat(): n for d, n in sorted(self.by_day.items())},
            "rejections": [r.as_dict() for r in self.rejected[:100]],
        }


@dataclass(frozen=True)
class Compaction:
    day: date
    events: int  # events in the compacted day after this run
    new_events: int  # events added by this run
    duplicates: int  # copies dropped because their event id was already stored
    parts: int  # part files folded in
    late_events: int  # new events received after their day had ended
    users: int
    bytes: int


class RawEventStore:
    """The daily-partitioned Parquet store of pseudonymised events."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    # --- paths ---------------------------------------------------------------------------------

    def day_path(self, day: date) -> Path:
        return self.root / day_dir_name(day)

    def days(self) -> list[date]:
        """Days that hold any events (compacted or not), oldest first."""
        return sorted(day for day, _ in _day_dirs(self.root))

    def parts(self, day: date) -> list[Path]:
        path = self.day_path(day)
        return sorted(path.glob("part-*.parquet")) if path.exists() else []

    def pending(self) -> dict[date, list[Path]]:
        """Days with part files not yet compacted (new or late events), for the sensor."""
        return {day: parts for day in self.days() if (parts := self.parts(day))}

    # --- writing -------------------------------------------------------------------------------

    def append(self, table: pa.Table) -> dict[date, int]:
        """Write accepted events as one part file per UTC day they belong to."""
        if table.num_rows == 0:
            return {}
        table = table.cast(RAW_SCHEMA)
        days = pc.cast(table["ts"], pa.date32())
        written: dict[date, int] = {}
        for day in pc.unique(days).to_pylist():
            part = table.filter(pc.equal(days, pa.scalar(day, pa.date32())))
            directory = self.day_path(day)
            directory.mkdir(parents=True, exist_ok=True)
            _atomic_write_table(part, directory / _part_name())
            written[day] = part.num_rows
        return written

    def record_rejections(self, rejections: list[Rejection], *, source: str, now: datetime | None = None) -> None:
        """Keep reasons (not payloads, which may hold raw identities) by the day they were received."""
        if not rejections:
            return
        now = now or datetime.now(UTC)
        directory = self.root / REJECTED_DIR / day_dir_name(now.date())
        directory.mkdir(parents=True, exist_ok=True)
        received = now.isoformat()
        lines = b"".join(orjson.dumps({**r.as_dict(), "source": source, "received_at": received}) + b"\n" for r in rejections)
        tmp = directory / f".tmp-{uuid.uuid4().hex}"
        tmp.write_bytes(lines)
        os.replace(tmp, directory / _part_name("jsonl"))

    def rejected_on(self, day: date) -> int:
        directory = self.root / REJECTED_DIR / day_dir_name(day)
        if not directory.exists():
            return 0
        return sum(path.read_bytes().count(b"\n") for path in directory.glob("part-*.jsonl"))

    def ingest(
        self,
        events: Iterable[Any],
        key: bytes,
        *,
        source: str,
        now: datetime | None = None,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        people: Any = None,
    ) -> IngestResult:
        now = now or datetime.now(UTC)
        table, rejections = prepare_events(events, key, now=now, retention_days=retention_days, people=people)
        self.record_rejections(rejections, source=source, now=now)
        by_day = self.append(table)
        return IngestResult(table.num_rows, rejections, by_day)

    def import_jsonl(
        self,
        path: Path | str,
        key: bytes,
        *,
        now: datetime | None = None,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        chunk: int = 50_000,
        people: Any = None,
    ) -> IngestResult:
        """Import a JSON-lines file of events; a rejection's index is its 1-based line number.

        `people` (an `analytics.usage.privacy.People`) lets names of the catalog's users be
        recognised in free text; refs and e-mail addresses are pseudonymised without it.
        """
        from analytics.usage.privacy import Scrubber

        path = Path(path)
        now = now or datetime.now(UTC)
        scrubber = Scrubber(key, people)
        result = IngestResult()
        events: list[Any] = []
        lines: list[int] = []
        not_json: list[Rejection] = []

        def flush() -> None:
            table, rejections = prepare_events(events, key, now=now, retention_days=retention_days, indices=lines, scrubber=scrubber)
            rejections = sorted(not_json + rejections, key=lambda r: r.index)
            self.record_rejections(rejections, source=f"file:{path.name}", now=now)
            result.merge(IngestResult(table.num_rows, rejections, self.append(table)))
            events.clear()
            lines.clear()
            not_json.clear()

        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    events.append(orjson.loads(line))
                    lines.append(number)
                except orjson.JSONDecodeError:
                    not_json.append(Rejection(number, None, ("line: not valid JSON",)))
                if len(events) >= chunk:
                    flush()
        flush()
        return result

    # --- compaction ----------------------------------------------------------------------------

    @contextmanager
    def _day_lock(self, day: date) -> Iterator[None]:
        directory = self.day_path(day)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def compact_day(self, day: date) -> Compaction:
        """Fold part files into `events.parquet`, keeping the first copy of each event id."""
        compacted = self.day_path(day) / COMPACTED
        if not self.parts(day):
            # Nothing to fold in; no lock (and no directory) needed, the compacted file is only
            # ever replaced atomically.
            return self._unchanged(day)
        with self._day_lock(day):
            parts = self.parts(day)
            if not parts:  # another run compacted them meanwhile
                return self._unchanged(day)
            tables = [pq.read_table(compacted, schema=RAW_SCHEMA)] if compacted.exists() else []
            before = tables[0].num_rows if tables else 0
            tables += [pq.read_table(p, schema=RAW_SCHEMA) for p in parts]
            # Not sorted: parts arrive in time order anyway, and sorting 100k rows costs as much as
            # deduplicating them.
            combined = _first_per_id(pa.concat_tables(tables))
            _atomic_write_table(combined, compacted)
            for part in parts:
                part.unlink(missing_ok=True)
            new_events = combined.num_rows - before
            duplicates = sum(t.num_rows for t in tables) - combined.num_rows
            # Rows keep their order through deduplication, so the rows after the previously
            # compacted ones are exactly the events this run added.
            day_end = pa.scalar(datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC), pa.timestamp("ms", tz="UTC"))
            late = pc.sum(pc.greater_equal(combined["received_at"].slice(before), day_end)).as_py() or 0
            users = pc.count_distinct(combined["user"]).as_py()
            events = combined.num_rows
            del tables, combined
            pa.default_memory_pool().release_unused()
            return Compaction(day, events, new_events, duplicates, len(parts), late, users, compacted.stat().st_size)

    def _unchanged(self, day: date) -> Compaction:
        compacted = self.day_path(day) / COMPACTED
        if not compacted.exists():
            return Compaction(day, 0, 0, 0, 0, 0, 0, 0)
        users = pq.read_table(compacted, columns=["user"])["user"]
        return Compaction(day, len(users), 0, 0, 0, 0, pc.count_distinct(users).as_py(), compacted.stat().st_size)

    def read_day(self, day: date, columns: list[str] | None = None) -> pa.Table:
        """The compacted day (empty when it has never been compacted)."""
        path = self.day_path(day) / COMPACTED
        if not path.exists():
            return RAW_SCHEMA.empty_table().select(columns) if columns else RAW_SCHEMA.empty_table()
        return pq.read_table(path, columns=columns)

    def has_events(self, day: date) -> bool:
        return (self.day_path(day) / COMPACTED).exists() or bool(self.parts(day))

    def identity_leaks(self, day: date) -> int:
        """Rows of the compacted day that hold a raw identity (should be 0): a user value that is not
        a keyed pseudonym, or a user entity ref or e-mail address in the subject, the attributes
        or the entity ref."""
        table = self.read_day(day, columns=["user", *_PERSON_COLUMNS])
        leaked = pc.invert(pc.fill_null(pc.match_substring_regex(table["user"], PSEUDONYM_PATTERN), True))
        for column in _PERSON_COLUMNS:
            found = pc.match_substring_regex(table[column], _RAW_PERSON_PATTERN, ignore_case=True)
            leaked = pc.or_(leaked, pc.fill_null(found, False))
        return int(pc.sum(leaked).as_py() or 0)

    # --- retention -----------------------------------------------------------------------------

    def sweep(self, cutoff: date) -> list[date]:
        """Delete every day (events and rejection logs) before `cutoff`; returns the days removed."""
        removed = []
        for day in self.days():
            if day < cutoff:
                shutil.rmtree(self.day_path(day))
                removed.append(day)
        for day, directory in _day_dirs(self.root / REJECTED_DIR):
            if day < cutoff:
                shutil.rmtree(directory)
        return removed


def _first_per_id(table: pa.Table) -> pa.Table:
    """Rows in order, dropping every later row whose event id was seen before."""
    duplicated = table["event_id"].to_pandas().duplicated(keep="first").to_numpy()
    return table.filter(pa.array(~duplicated))


class DailySummaryStore:
    """One directory of small Parquet files per summarised day (see `analytics.usage.insights.DaySummary`)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def day_path(self, day: date) -> Path:
        return self.root / day_dir_name(day)

    def days(self) -> list[date]:
        return sorted(day for day, directory in _day_dirs(self.root) if (directory / "totals.parquet").exists())

    def write(self, summary: Any) -> int:
        """Replace a day's summary as a whole: build it in a temporary directory, then swap it in."""
        final = self.day_path(summary.day)
        tmp = self.root / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir(parents=True)
        size = 0
        from analytics.usage.insights import SUMMARY_SCHEMAS

        for name, frame in summary.parts().items():
            path = tmp / f"{name}.parquet"
            table = pa.Table.from_pandas(frame, schema=SUMMARY_SCHEMAS[name], preserve_index=False)
            pq.write_table(table, path, **_PARQUET)
            size += path.stat().st_size
        old = None
        if final.exists():
            old = self.root / f".old-{uuid.uuid4().hex}"
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old)
        return size

    def load(self, days: Iterable[date], parts: Iterable[str] | None = None, columns: dict[str, list[str]] | None = None) -> dict[str, Any]:
        """Each part over `days`, concatenated, with an integer `day` column (days since 1970).

        `columns` restricts what is read of a part (e.g. pairs without their event counts).
        """
        import pandas as pd

        from analytics.usage.insights import SUMMARY_DICTIONARY_COLUMNS, SUMMARY_PARTS, day_number

        days = [d for d in days if (self.day_path(d) / "totals.parquet").exists()]
        out = {}

        def read(name: str, day: date) -> pa.Table:
            wanted = (columns or {}).get(name)
            dictionary = [c for c in SUMMARY_DICTIONARY_COLUMNS.get(name, []) if wanted is None or c in wanted]
            table = pq.read_table(self.day_path(day) / f"{name}.parquet", columns=wanted, read_dictionary=dictionary)
            return table.append_column("day", pa.array(np.full(table.num_rows, day_number(day), dtype=np.int64)))

        # Parquet decoding releases the GIL: a few threads read 90 days of small files ~2x faster.
        with ThreadPoolExecutor(max_workers=4) as pool:
            for name in parts or SUMMARY_PARTS:
                tables = list(pool.map(lambda day: read(name, day), days))
                if not tables:
                    out[name] = pd.DataFrame({"day": pd.Series(dtype="int64")})
                    continue
                out[name] = pa.concat_tables(tables).unify_dictionaries().to_pandas()
        # Arrow's allocator keeps freed buffers for reuse; hand them back after the big load.
        pa.default_memory_pool().release_unused()
        return out

    def sweep(self, cutoff: date) -> list[date]:
        removed = [day for day in self.days() if day < cutoff]
        for day in removed:
            shutil.rmtree(self.day_path(day))
        return removed
