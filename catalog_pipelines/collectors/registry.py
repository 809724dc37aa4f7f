"""Fact-collector registry: `type:` in collectors.yaml -> the factory that builds the collector.

The same mechanism as entity providers (`catalog_pipelines.model.plugins.Registry`): the
entry-point group `catalog_pipelines.collectors` plus this project's built-ins. Another
distribution adds a collector by declaring, in its pyproject.toml,

    [project.entry-points."catalog_pipelines.collectors"]
    datadog = "acme_datadog.collector:DatadogCollector.from_config"

and `type: datadog` in collectors.yaml then builds it (docs/facts.md has a worked example, and
examples/collector-package/ a runnable one). A factory is called as
`factory(name, params, base_dir)` (`collectors.base.CollectorFactory`). Nothing is imported until
a collector of that type is built.
"""

from __future__ import annotations

from catalog_pipelines.collectors.base import Collector
from catalog_pipelines.model.plugins import Registry, RegistryError  # noqa: F401  (re-exported)

COLLECTOR_GROUP = "catalog_pipelines.collectors"

# Also declared under [project.entry-points."catalog_pipelines.collectors"] in pyproject.toml
# (tests/collectors/test_collector_registry.py keeps the two equal).
BUILTIN_COLLECTORS = {
    "report_files": "catalog_pipelines.collectors.reports.folder:ReportFolderCollector.from_config",
    "github": "catalog_pipelines.collectors.apis.github:GithubCollector.from_config",
    "gitlab": "catalog_pipelines.collectors.apis.gitlab:GitlabCollector.from_config",
    "jira": "catalog_pipelines.collectors.apis.jira:JiraCollector.from_config",
    "pagerduty": "catalog_pipelines.collectors.apis.pagerduty:PagerdutyCollector.from_config",
    "sonarqube": "catalog_pipelines.collectors.apis.sonarqube:SonarqubeCollector.from_config",
}

COLLECTORS: Registry[Collector] = Registry(COLLECTOR_GROUP, BUILTIN_COLLECTORS, what="fact collector type")
