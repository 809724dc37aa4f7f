"""Vendor API collectors (GitHub, GitLab, Jira, PagerDuty, SonarQube) on one httpx client with the
project's retry policy (`http.py`, `catalog_pipelines.model.retry`). See docs/facts.md, "API
collectors". `API_COLLECTORS` maps each type name to its factory, in the `module:Class.from_config`
form of the collector registry (`collectors.registry.BUILTIN_COLLECTORS` includes them)."""

API_COLLECTORS = {
    "github": "catalog_pipelines.collectors.apis.github:GithubCollector.from_config",
    "gitlab": "catalog_pipelines.collectors.apis.gitlab:GitlabCollector.from_config",
    "jira": "catalog_pipelines.collectors.apis.jira:JiraCollector.from_config",
    "pagerduty": "catalog_pipelines.collectors.apis.pagerduty:PagerdutyCollector.from_config",
    "sonarqube": "catalog_pipelines.collectors.apis.sonarqube:SonarqubeCollector.from_config",
}
