"""`report_files`: a collector that watches a folder of report files published by CI jobs.

Layout (relative to `path`):
- per repository: `<host>/<owner-or-group-path>/<repo>/**/<file>`, e.g.
  `github.com/acme/petstore/ci/trivy.json`. Targets, in order: `github.com/project-slug` =
  `owner/repo` (host github.com), `gitlab.com/project-slug` = `group/sub/repo` (host gitlab.com or
  any host with "gitlab" in its name), then always `backstage.io/source-location` =
  `url:https://<host>/<owner...>/<repo>`. Where the repository path ends: at a `-` directory if
  there is one (as in GitLab's own URLs: `gitlab.com/group/sub/repo/-/ci/junit.xml`); else, on a
  GitLab host, at the file's directory (`gitlab.com/group/sub/repo/junit.xml`); else (GitHub and
  other hosts) after two segments, owner and repo.
- per entity: `entity/<kind>/<namespace>/<name>/**/<file>` -> `Target(ENTITY_REF, "kind:namespace/name")`.

Hidden files and directories (a leading `.`) are ignored. A file whose format none of the known
formats claims is a Rejection; a file of a known format this instance does not read (`formats:`)
is left to the instance that does. A file over `max_file_bytes` is refused before it is read.

Several reports of the kinds one instance reads, for one target: counts are summed (results,
vulnerabilities, tests...), `tools` are unioned, coverage and Scorecard figures come from the
newest file (mtime). A file that cannot be read is a Rejection and the target's other files still
land.

Incremental runs (the cursor): `{"mtime_ns": newest modification time seen, "names": [files with
that mtime]}`. A target is read again, all its files, when any of its files is newer than the
cursor (or has the cursor's mtime and is not in `names`); an unchanged target is skipped and its
facts stay as stored (the caller keeps the latest facts per entity). So an unchanged re-run walks
the folder (stat only) and reads nothing; a deleted report does not retract facts (the target's
next change re-reads what is there). A file copied in with an older mtime preserved (`cp -p`,
`rsync -a`) is not noticed until its target changes: touch it, or run without a cursor. Only the
last batch carries the new cursor, so a run that fails midway is read again from the old one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from catalog_pipelines.collectors.base import ENTITY_REF, Batch, FactDecl, Observation, Rejection, Target
from catalog_pipelines.collectors.reports import FORMATS, HEAD_BYTES, detect_format, facts_of, parse_bytes
from catalog_pipelines.collectors.reports.errors import DEFAULT_MAX_FILE_BYTES, ReportError, read_limited

FormatName = Literal["sarif", "trivy", "grype", "osv", "cobertura", "lcov", "jacoco", "junit", "scorecard"]
_SUMMED = ("results_total", "results_suppressed", "vulnerabilities_total", "misconfigurations_failed", "secrets", "tests", "failures", "errors", "skipped", "flaky")
_SUMMED_OBJECTS = ("results_by_level", "vulnerabilities_by_severity")
_NEWEST = ("line_coverage_pct", "branch_coverage_pct", "lines_valid", "score", "checks")
_CURSOR_NAMES_MAX = 1000  # names kept at the newest mtime; beyond, a few files are re-read (harmless)


class ReportFolderParams(BaseModel):
    """The `params` of a `report_files` entry in collectors.yaml."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="the watched folder; relative to the configuration file's directory")
    formats: list[FormatName] = Field(default_factory=lambda: list(FORMATS), description="the report formats this instance reads (default: all)")
    max_file_bytes: int = Field(DEFAULT_MAX_FILE_BYTES, gt=0, description="larger files are refused before they are read")
    batch_targets: int = Field(500, gt=0, description="targets per yielded batch")


@dataclass(slots=True)
class _File:
    rel: str
    mtime_ns: int
    size: int


@dataclass(slots=True)
class _Group:
    folder: str
    files: list[_File] = field(default_factory=list)


def target_folder(dirs: Sequence[str]) -> str | tuple[str]:
    """The folder naming the target of the files in folder `dirs` (path segments relative to the
    watched folder), e.g. `gitlab.com/group/sub/repo`; or `(reason,)` when it fits no layout."""
    if dirs and dirs[0] == "entity":
        if len(dirs) < 4:
            return ("under entity/ a report must sit in entity/<kind>/<namespace>/<name>/",)
        return "/".join(dirs[:4])
    if len(dirs) < 3:
        return ("not under <host>/<owner>/<repo>/ or entity/<kind>/<namespace>/<name>/",)
    if "-" in dirs[1:]:
        end = dirs.index("-", 1)
    elif "gitlab" in dirs[0].lower():
        end = len(dirs)
    else:
        end = 3
    if end < 3:
        return (f"the repository path {'/'.join(dirs[1:end]) or '(empty)'!r} needs an owner or group and a name",)
    return "/".join(dirs[:end])


def folder_targets(folder: str) -> tuple[Target, ...]:
    """The targets a target folder (from `target_folder`) names, in the order they are tried."""
    parts = folder.split("/")
    if parts[0] == "entity":
        kind, namespace, name = parts[1:4]
        return (Target(ENTITY_REF, f"{kind}:{namespace}/{name}"),)
    host, slug = parts[0].lower(), "/".join(parts[1:])
    targets: list[Target] = []
    if host == "github.com":
        targets.append(Target("github.com/project-slug", slug))
    elif "gitlab" in host:
        targets.append(Target("gitlab.com/project-slug", slug))
    targets.append(Target("backstage.io/source-location", f"url:https://{host}/{slug}"))
    return tuple(targets)


def targets_for(rel_parts: Sequence[str]) -> tuple[tuple[Target, ...], str] | str:
    """(targets, target folder) for a file's path relative to the watched folder, or the reason
    it fits no layout."""
    placed = target_folder(list(rel_parts)[:-1])
    if isinstance(placed, tuple):
        return placed[0]
    return folder_targets(placed), placed


class ReportFolderCollector:
    """Watches a folder of report files (collector type `report_files`); see the module docstring."""

    type_name = "report_files"

    def __init__(self, name: str, root: Path, formats: Sequence[str] = tuple(FORMATS), *, max_file_bytes: int = DEFAULT_MAX_FILE_BYTES, batch_targets: int = 500):
        unknown = [f for f in formats if f not in FORMATS]
        if unknown:
            raise ValueError(f"unknown report formats {unknown}; known: {', '.join(FORMATS)}")
        self.name = name
        self.root = Path(root)
        self.formats = tuple(formats)
        self.max_file_bytes = max_file_bytes
        self.batch_targets = batch_targets

    @classmethod
    def from_config(cls, name: str, params: dict[str, Any], base_dir: Any) -> ReportFolderCollector:
        p = ReportFolderParams.model_validate(params)
        root = Path(p.path)
        if not root.is_absolute():
            root = Path(base_dir or ".") / root
        return cls(name, root, p.formats, max_file_bytes=p.max_file_bytes, batch_targets=p.batch_targets)

    def facts(self) -> Mapping[str, FactDecl]:
        return facts_of(self.formats)

    # -----------------------------------------------------------------------------------------

    def _walk(self) -> Iterator[tuple[list[str], list[_File]]]:
        """(folder segments, its regular files) for every non-hidden folder under the root, in no
        particular order; symbolic links are not followed (the folder is written by CI jobs: untrusted)."""
        stack: list[tuple[str, list[str]]] = [(str(self.root), [])]
        while stack:
            directory, segments = stack.pop()
            try:
                with os.scandir(directory) as it:
                    entries = list(it)  # unsorted: the order of the walk decides nothing
            except OSError:
                continue
            prefix = "/".join(segments) + "/" if segments else ""
            files: list[_File] = []
            for entry in entries:
                name = entry.name
                if name[0] == ".":
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append((entry.path, [*segments, name]))
                    elif entry.is_file(follow_symlinks=False):  # a symlink could point anywhere: not followed
                        st = entry.stat(follow_symlinks=False)
                        files.append(_File(prefix + name, st.st_mtime_ns, st.st_size))
                except OSError:
                    continue
            if files:
                yield segments, files

    def collect(self, cursor: Mapping[str, Any] | None, now: datetime) -> Iterator[Batch]:
        since_ns = int(cursor.get("mtime_ns", -1)) if cursor else -1
        seen_names = set(cursor.get("names", ())) if cursor else set()
        groups: dict[str, _Group] = {}
        changed: set[str] = set()
        rejections: list[Rejection] = []
        newest_ns, newest_names = since_ns, set(seen_names)
        if not self.root.is_dir():
            yield Batch(rejections=[Rejection(str(self.root), "the report folder does not exist")], cursor=None)
            return
        for segments, files in self._walk():
            placed = target_folder(segments)
            group = None if isinstance(placed, tuple) else groups.get(placed)
            for f in files:
                if f.mtime_ns > newest_ns:
                    newest_ns, newest_names = f.mtime_ns, {f.rel}
                elif f.mtime_ns == newest_ns:
                    newest_names.add(f.rel)
                is_new = f.mtime_ns > since_ns or (f.mtime_ns == since_ns and f.rel not in seen_names)
                if isinstance(placed, tuple):
                    if is_new:
                        rejections.append(Rejection(f.rel, placed[0]))
                    continue
                if group is None:
                    group = groups[placed] = _Group(placed)
                group.files.append(f)
                if is_new:
                    changed.add(placed)
        new_cursor = {"mtime_ns": newest_ns, "names": sorted(newest_names)[:_CURSOR_NAMES_MAX]} if newest_ns >= 0 else None
        keys = sorted(changed)
        if not keys:
            yield Batch(rejections=rejections, cursor=new_cursor)
            return
        for start in range(0, len(keys), self.batch_targets):
            batch = Batch(rejections=rejections if start == 0 else [])
            for key in keys[start : start + self.batch_targets]:
                observation = self._read_group(groups[key], batch.rejections)
                if observation is not None:
                    batch.observations.append(observation)
            if start + self.batch_targets >= len(keys):
                batch.cursor = new_cursor
            yield batch

    def _read_group(self, group: _Group, rejections: list[Rejection]) -> Observation | None:
        """Parse a target's files of this instance's formats and merge their facts."""
        parsed: list[tuple[_File, dict[str, Any]]] = []
        for f in sorted(group.files, key=lambda f: f.rel):
            try:
                fmt = detect_format(f.rel, _head(self.root, f))
                if fmt is None:
                    raise ReportError(f.rel, "", f"no report format recognised (known: {', '.join(FORMATS)})")
                if fmt not in self.formats:
                    continue  # another instance's report (e.g. coverage beside SARIF)
                if f.size > self.max_file_bytes:
                    raise ReportError(f.rel, "", f"file is {f.size} bytes, over the limit of {self.max_file_bytes} bytes")
                data = read_limited(os.path.join(self.root, f.rel), self.max_file_bytes, shown=f.rel)
                _fmt, facts = parse_bytes(fmt, data, f.rel)
            except ReportError as exc:
                rejections.append(Rejection(exc.file + (f": {exc.place}" if exc.place else ""), exc.reason))
                continue
            parsed.append((f, facts))
        if not parsed:
            return None
        merged = merge_facts([(f.mtime_ns, facts) for f, facts in parsed])
        observed_ns = max(f.mtime_ns for f, _ in parsed)
        origin = parsed[0][0].rel if len(parsed) == 1 else f"{parsed[0][0].rel} (+{len(parsed) - 1} more)"
        return Observation(targets=folder_targets(group.folder), facts=merged, observed_at=datetime.fromtimestamp(observed_ns / 1e9, tz=timezone.utc), origin=origin)


def _head(root: Path, f: _File) -> bytes:
    try:
        with open(os.path.join(root, f.rel), "rb") as handle:
            return handle.read(HEAD_BYTES)
    except OSError as exc:
        raise ReportError(f.rel, "", f"cannot read: {exc.strerror or exc}") from None


def merge_facts(reports: Sequence[tuple[int, Mapping[str, Any]]]) -> dict[str, Any]:
    """Facts of several reports about one target: counts summed, tools unioned, coverage and
    Scorecard figures from the newest report (by mtime, the later listed on a tie) that has them."""
    merged: dict[str, Any] = {}
    newest: dict[str, tuple[int, int]] = {}
    for order, (mtime, facts) in enumerate(reports):
        for name, value in facts.items():
            if name in _SUMMED:
                merged[name] = merged.get(name, 0) + value
            elif name in _SUMMED_OBJECTS:
                into = merged.setdefault(name, {})
                for k, v in value.items():
                    into[k] = into.get(k, 0) + v
            elif name == "tools":
                tools = merged.setdefault("tools", [])
                tools.extend(t for t in value if t not in tools)
            else:  # coverage and Scorecard figures (_NEWEST), and any other fact: the newest report's
                if (mtime, order) >= newest.get(name, (-1, -1)):
                    newest[name] = (mtime, order)
                    merged[name] = value
    if "tools" in merged:
        merged["tools"] = sorted(merged["tools"])
    # Coverage figures travel together: a branch figure from an older report than the line figure is dropped.
    if "branch_coverage_pct" in merged and "line_coverage_pct" in merged and newest["branch_coverage_pct"] != newest["line_coverage_pct"]:
        del merged["branch_coverage_pct"]
    return merged
