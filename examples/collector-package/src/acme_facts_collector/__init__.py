"""An example fact collector in its own package: deployments per repository from a JSON file.

The file holds `[{"repository": "github.com/acme/petstore", "deployments": 12, "last_status":
"success", "at": "2026-12-01T10:00:00Z"}, ...]`. Each record names its repository; the collector
emits targets the way Backstage plugins map records (never an entity ref it made up):
`github.com/project-slug` = `acme/petstore`, then `backstage.io/source-location`.
Records are read `page_size` at a time; the cursor is the offset of the next record, so a run that
fails resumes after the last stored batch.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from catalog_pipelines.collectors.base import Batch, FactDecl, Observation, Rejection, Target

FACTS = {
    "deployments": FactDecl("deployments", "number", "deployments in the look-back window"),
    "last_status": FactDecl("last_status", "string", "status of the latest deployment"),
}


class DeploysCollector:
    def __init__(self, name: str, path: Path, page_size: int = 2):
        self.name, self.path, self.page_size = name, path, page_size

    @classmethod
    def from_config(cls, name, params, base_dir):
        return cls(name, Path(base_dir) / params["file"], int(params.get("page_size", 2)))

    def facts(self):
        return FACTS

    def collect(self, cursor, now):
        records = json.loads(self.path.read_text())
        start = int((cursor or {}).get("offset", 0))
        for begin in range(start, len(records), self.page_size):
            batch = Batch(cursor={"offset": min(begin + self.page_size, len(records))})
            for i, record in enumerate(records[begin:begin + self.page_size], begin):
                repo = record.get("repository")
                if not isinstance(repo, str) or repo.count("/") < 2:
                    batch.rejections.append(Rejection(f"{self.path.name}[{i}]", "no repository 'host/owner/name'"))
                    continue
                host, slug = repo.split("/", 1)
                targets = ((Target(f"{host}/project-slug", slug),) if host == "github.com" else ()) + (Target("backstage.io/source-location", f"url:https://{repo}"),)
                at = datetime.fromisoformat(record.get("at", now.isoformat()).replace("Z", "+00:00"))
                facts = {k: record[k] for k in ("deployments", "last_status") if k in record}
                batch.observations.append(Observation(targets, facts, at, origin=f"{self.path.name}[{i}]"))
            yield batch
