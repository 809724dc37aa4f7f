"""SARIF 2.1.0 logs (any scanner: CodeQL, Semgrep, Trivy, gitleaks, Bandit, OSV-Scanner...).

Facts: `results_total`, `results_by_level` {error, warning, note, none}, `tools` (the drivers'
names), `results_suppressed` (results with an accepted suppression: not counted in the others).

The level of a result follows SARIF 2.1.0 §3.27.10:
1. `kind` present and other than `fail` (pass, open, informational, notApplicable, review): `none`;
2. else the result's own `level`;
3. else the `defaultConfiguration.level` of the result's rule: the reportingDescriptor found via
   `rule.toolComponent` (an index into `tool.extensions`, or a name/guid) and `rule.index` /
   `ruleIndex`, else by `rule.id` / `ruleId` (a hierarchical id `A/B` falls back to `A`, §3.27.5)
   in the driver's rules and then in every extension's rules;
4. else `warning`.
"""

from __future__ import annotations

from typing import Any

from catalog_pipelines.collectors.reports.errors import ReportError, as_dict, as_list, expect, load_json

LEVELS = ("error", "warning", "note", "none")


class _Component:
    """A toolComponent's rules, by index and by id."""

    __slots__ = ("rules", "by_id")

    def __init__(self, component: dict[str, Any]):
        self.rules = [r for r in component.get("rules") or [] if isinstance(r, dict)]
        self.by_id: dict[str, dict[str, Any]] | None = None

    def find(self, index: Any, rule_id: Any) -> dict[str, Any] | None:
        if isinstance(index, int) and 0 <= index < len(self.rules):
            return self.rules[index]
        if not isinstance(rule_id, str):
            return None
        if self.by_id is None:
            self.by_id = {}
            for rule in self.rules:
                if isinstance(rule.get("id"), str):
                    self.by_id.setdefault(rule["id"], rule)
        found = self.by_id.get(rule_id)
        if found is None and "/" in rule_id:
            found = self.by_id.get(rule_id.split("/", 1)[0])
        return found


def _default_level(rule: dict[str, Any] | None) -> str | None:
    if not rule:
        return None
    config = rule.get("defaultConfiguration")
    level = config.get("level") if isinstance(config, dict) else None
    return level if level in LEVELS else None


def _is_suppressed(result: dict[str, Any]) -> bool:
    """§3.27.23/§3.35.3: suppressed when some suppression is accepted (a status absent means accepted)."""
    suppressions = result.get("suppressions")
    if not suppressions or not isinstance(suppressions, list):
        return False
    return any(isinstance(s, dict) and s.get("status", "accepted") == "accepted" for s in suppressions)


def parse_sarif(data: bytes, name: str) -> dict[str, Any]:
    log = load_json(data, name, "SARIF log")
    expect(isinstance(log, dict), name, "$", "not a SARIF log: the document is not an object")
    expect("runs" in log, name, "$", "not a SARIF log: no 'runs' array")
    version = log.get("version")
    expect(version in (None, "2.1.0"), name, "$.version", f"SARIF version {version!r} is not supported (only 2.1.0)")
    by_level = dict.fromkeys(LEVELS, 0)
    suppressed = 0
    tools: list[str] = []
    for r, run in enumerate(as_list(log.get("runs"), name, "$.runs")):
        run_place = f"$.runs[{r}]"
        run = as_dict(run, name, run_place)
        # tool.driver is required by the schema (§3.14, §3.18.2): without it this is not SARIF.
        expect(isinstance(run.get("tool"), dict), name, f"{run_place}.tool", "not a SARIF log: a run has no 'tool' object")
        tool = run["tool"]
        expect(isinstance(tool.get("driver"), dict), name, f"{run_place}.tool.driver", "not a SARIF log: a run's tool has no 'driver' object")
        driver_doc = tool["driver"]
        tool_name = driver_doc.get("name")
        if isinstance(tool_name, str) and tool_name and tool_name not in tools:
            tools.append(tool_name)
        driver = _Component(driver_doc)
        extension_docs = [e for e in as_list(tool.get("extensions"), name, f"{run_place}.tool.extensions") if isinstance(e, dict)]
        extensions = [_Component(e) for e in extension_docs]
        ext_by_key: dict[str, _Component] = {}
        for doc, comp in zip(extension_docs, extensions):
            for key in ("name", "guid"):
                if isinstance(doc.get(key), str):
                    ext_by_key.setdefault(doc[key], comp)
        for i, result in enumerate(as_list(run.get("results"), name, f"{run_place}.results")):
            if not isinstance(result, dict):
                raise ReportError(name, f"{run_place}.results[{i}]", "a result is not an object")
            if _is_suppressed(result):
                suppressed += 1
                continue
            kind = result.get("kind", "fail")
            if kind != "fail":
                level = "none"
            else:
                level = result.get("level")
                if level is None:
                    level = _rule_level(result, driver, extensions, ext_by_key) or "warning"
                elif level not in LEVELS:
                    raise ReportError(name, f"{run_place}.results[{i}].level", f"unknown level {level!r}")
            by_level[level] += 1
    return {"results_total": sum(by_level.values()), "results_by_level": by_level, "tools": tools, "results_suppressed": suppressed}


def _rule_level(result: dict[str, Any], driver: _Component, extensions: list[_Component], ext_by_key: dict[str, _Component]) -> str | None:
    ref = result.get("rule") if isinstance(result.get("rule"), dict) else {}
    rule_id = ref.get("id", result.get("ruleId"))
    index = ref.get("index", result.get("ruleIndex"))
    component = driver
    tc = ref.get("toolComponent")
    if isinstance(tc, dict):
        tc_index = tc.get("index")
        if isinstance(tc_index, int) and 0 <= tc_index < len(extensions):
            component = extensions[tc_index]
        elif isinstance(tc.get("name"), str) and tc["name"] in ext_by_key:
            component = ext_by_key[tc["name"]]
        elif isinstance(tc.get("guid"), str) and tc["guid"] in ext_by_key:
            component = ext_by_key[tc["guid"]]
    rule = component.find(index, rule_id)
    if rule is None and isinstance(rule_id, str):
        # The id names a rule somewhere in the run: the driver first, then each extension.
        for comp in (driver, *extensions):
            rule = comp.find(None, rule_id)
            if rule is not None:
                break
    return _default_level(rule)
