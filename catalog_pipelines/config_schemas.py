"""Every YAML configuration kind, its pydantic model, its JSON Schema and a check of all files.

One implementation for every door: `catalog-pipelines config schema` / `config validate` call
`write_schemas` / `validate_all`; tests/services/test_config_schemas.py keeps config/schemas/ up to date.
Each kind is checked in two steps: the file's shape against the model (every problem with file,
line, path and a "did you mean" for unknown keys), then, when the shape is right, the kind's own
loader (cross-field rules: unknown facts, permission names, references between files, ...).
Imports of the analytics modules are lazy so that `--help` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog_pipelines.model.config_files import ConfigIssue, json_schema, validate_text


@dataclass(frozen=True)
class ConfigKind:
    name: str
    model: str  # "module:Class"
    description: str
    files: Callable[[Any], list[Path]]  # Settings -> the files of this kind
    semantic: Callable[[Path, str], list[ConfigIssue]] | None = None

    def model_class(self) -> Any:
        import importlib

        module, attr = self.model.split(":")
        return getattr(importlib.import_module(module), attr)


def _yaml_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml"))


def _one(path: Path) -> list[Path]:
    return [path] if path.exists() else []


def _providers_semantic(path: Path, shown: str) -> list[ConfigIssue]:
    from catalog_pipelines.ingestion.config import ConfigError, load_providers, missing_roots

    try:
        load_providers(path)
    except ConfigError as exc:
        return [ConfigIssue(shown, 1, str(exc).removeprefix(f"{path}: "))]
    issues = []
    for problem in missing_roots(path):
        line, _, message = problem.removeprefix(f"{path}:").partition(": ")
        issues.append(ConfigIssue(shown, int(line), message))
    return issues


def _scorecards_semantic(path: Path, shown: str) -> list[ConfigIssue]:
    # Scorecard checks span files (tracks name checks of other files): validated as one directory
    # by `_scorecard_directory_issues`; a single file here is checked on its own.
    from analytics.scorecards.config import ScorecardConfigError, load_config_texts

    try:
        load_config_texts([(shown, path.read_text(encoding="utf-8"))], facts=_fact_catalog())
    except ScorecardConfigError as exc:
        return [i for i in exc.issues if "names unknown check" not in i.message]
    return []


def _fact_catalog() -> Any:
    """The facts checks may reference; without a valid collectors.yaml, the catalog's own (the
    collectors file reports its own problems)."""
    from catalog_pipelines.services.facts import CollectorConfigError, fact_catalog

    try:
        return fact_catalog()
    except CollectorConfigError:
        return None


def _collectors_semantic(path: Path, shown: str) -> list[ConfigIssue]:
    from catalog_pipelines.services.facts import validate_collectors_file

    return validate_collectors_file(path, shown)


def _surveys_semantic(path: Path, shown: str) -> list[ConfigIssue]:
    from analytics.surveys.config import SurveyConfigError, load_survey

    try:
        load_survey(path)
    except SurveyConfigError as exc:
        return [ConfigIssue(shown, i.line, i.message, i.path) for i in exc.issues] or [ConfigIssue(shown, 1, str(exc).removeprefix(f"{path}: "))]
    return []


def _rbac_semantic(path: Path, shown: str) -> list[ConfigIssue]:
    from analytics.rbac import Policy, PolicyError

    try:
        Policy.from_file(path)
    except PolicyError as exc:
        return [ConfigIssue(shown, line, problem) for problem, line in zip(exc.problems, exc.lines or [1] * len(exc.problems), strict=True)]
    return []


def _gigs_semantic(path: Path, shown: str) -> list[ConfigIssue]:
    from analytics.health.skills import SkillsConfigError, load_gigs

    try:
        load_gigs(path)
    except SkillsConfigError as exc:
        return [ConfigIssue(shown, i.line, i.message, i.path) for i in exc.issues]
    return []


def _delivery_semantic(path: Path, shown: str) -> list[ConfigIssue]:
    from analytics.delivery.config import DeliveryConfigError, load_config

    try:
        load_config(path)
    except DeliveryConfigError as exc:
        return [ConfigIssue(shown, i.line, i.message, i.path) for i in exc.issues]
    return []


def _notifications_semantic(path: Path, shown: str) -> list[ConfigIssue]:
    from catalog_pipelines.services.notify_config import NotificationsConfigError, parse_notifications_text

    try:
        parse_notifications_text(path.read_text(encoding="utf-8"), shown)
    except NotificationsConfigError as exc:
        return exc.issues
    return []


KINDS: dict[str, ConfigKind] = {
    kind.name: kind
    for kind in (
        ConfigKind("providers", "catalog_pipelines.ingestion.config:ProvidersFile", "Entity providers ingested by catalog-pipelines (config/providers.yaml)",
                   lambda s: _one(s.providers_config), _providers_semantic),
        ConfigKind("collectors", "catalog_pipelines.services.collectors_config:CollectorsFile", "Fact collectors: type, connection, cadence, retention, facts (config/collectors.yaml)",
                   lambda s: _one(s.collectors_config), _collectors_semantic),
        ConfigKind("scorecards", "analytics.scorecards.config:ScorecardFile", "Scorecard checks, tracks and campaigns (config/scorecards/*.yaml)",
                   lambda s: _yaml_files(s.scorecards_config), _scorecards_semantic),
        ConfigKind("surveys", "analytics.surveys.config:SurveyFile", "A survey definition (config/surveys/*.yaml)",
                   lambda s: _yaml_files(s.surveys_config), _surveys_semantic),
        ConfigKind("rbac", "analytics.rbac:PolicyFile", "The RBAC policy (config/permissions.yaml)",
                   lambda s: _one(s.permissions_config), _rbac_semantic),
        ConfigKind("skills", "analytics.health.skills:SkillsFile", "Skill taxonomy and matching settings (config/skills/skills.yaml)",
                   lambda s: _one(s.skills_config / "skills.yaml")),
        ConfigKind("gigs", "analytics.health.skills:GigsFile", "Gigs and embeds of the skills exchange (config/skills/gigs.yaml)",
                   lambda s: _one(s.skills_config / "gigs.yaml"), _gigs_semantic),
        ConfigKind("notifications", "catalog_pipelines.services.notify_config:NotificationsFile",
                   "Notification channels and routing rules (config/notifications.yaml)",
                   lambda s: _one(s.notifications_config), _notifications_semantic),
        ConfigKind("delivery", "analytics.delivery.config:DeliveryFile",
                   "Delivery metrics: windows, minimum events, DORA bands, time zone (config/delivery.yaml)",
                   lambda s: _one(s.delivery_config), _delivery_semantic),
    )
}


def schemas() -> dict[str, dict[str, Any]]:
    """`{file name: JSON Schema}` for every kind."""
    return {f"{kind.name}.schema.json": json_schema(kind.model_class(), f"catalog-pipelines {kind.name}", kind.description) for kind in KINDS.values()}


def write_schemas(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = out_dir / name
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


def _display(path: Path, base: Path | None) -> str:
    if base is not None:
        try:
            return str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            pass
    return str(path)


def validate_file(kind: ConfigKind, path: Path, shown: str | None = None) -> list[ConfigIssue]:
    shown = shown or str(path)
    _, issues = validate_text(kind.model_class(), path.read_text(encoding="utf-8"), shown)
    if not issues and kind.semantic is not None:
        issues = kind.semantic(path, shown)
    return issues


def validate_all(settings: Any = None, base: Path | None = None) -> tuple[list[Path], list[ConfigIssue]]:
    """Check every configured file of every kind: `(files checked, issues)`."""
    if settings is None:
        from catalog_pipelines.settings import Settings

        settings = Settings.from_env()
    checked: list[Path] = []
    issues: list[ConfigIssue] = []
    if getattr(settings, "providers_config_is_explicit", False) and not settings.providers_config.exists():
        issues.append(ConfigIssue(str(settings.providers_config), 0,
                                  "no such providers file (CATALOG_PIPELINES_PROVIDERS names it)"))
    for kind in KINDS.values():
        files = kind.files(settings)
        for path in files:
            checked.append(path)
            issues += validate_file(kind, path, _display(path, base))
        if kind.name == "scorecards" and files and not issues:
            issues += _scorecard_directory_issues(settings.scorecards_config, base)
    return checked, issues


def _scorecard_directory_issues(directory: Path, base: Path | None) -> list[ConfigIssue]:
    from analytics.scorecards.config import ScorecardConfigError, load_config_texts

    paths = _yaml_files(directory)
    try:
        load_config_texts([(_display(p, base), p.read_text(encoding="utf-8")) for p in paths], facts=_fact_catalog())
    except ScorecardConfigError as exc:
        return [i for i in exc.issues if "names unknown check" in i.message]
    return []
