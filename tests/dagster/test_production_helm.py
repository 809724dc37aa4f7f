"""The Kubernetes deployment: deploy/helm/values.yaml for the official Dagster chart (1.13.27).

`helm` and the chart cannot be installed offline, and no pip package ships the chart's
values.schema.json, so this is the honest substitute (docs/production.md says so):

1. a structural JSON Schema of every key the file sets, written from the chart's own value models
   (dagster-io/dagster `helm/dagster/schema/schema/charts/**`, 1.13 line): unknown keys are refused
   wherever the chart refuses them (`extra = forbid`), types and enums as the chart declares them;
2. the instance part rendered the way the chart's templates render it (`templates/configmap-instance.yaml`
   and `templates/helpers/instance/*.tpl`), then validated by Dagster's and dagster-k8s's own config
   schemas, and compared with deploy/dagster.yaml: same run queue, run monitoring and run retries;
3. cross-checks with the project: the code location module, the Dagster version of the images.

What this cannot catch: template errors in the chart itself, and Kubernetes objects the chart builds
from the values (run `helm lint --strict` / `helm template` where the chart is reachable).
"""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
import yaml
from helpers import REPO_ROOT

REPO = REPO_ROOT
VALUES = REPO / "deploy" / "helm" / "values.yaml"
DAGSTER_VERSION = "1.13.27"

# ##### THE CHART'S VALUE SCHEMA (the part this project sets)

_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_STR_MAP = {"type": "object", "additionalProperties": _STR}
_IMAGE = {  # kubernetes.Image
    "type": "object", "additionalProperties": False, "required": ["repository", "pullPolicy"],
    "properties": {"repository": _STR, "tag": {"type": ["string", "integer", "null"]},
                   "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]}},
}
_QUANTITY = {"type": ["string", "integer", "number"]}
_RESOURCES = {  # io.k8s.api.core.v1.ResourceRequirements
    "type": "object", "additionalProperties": False,
    "properties": {k: {"type": "object", "additionalProperties": _QUANTITY,
                       "propertyNames": {"enum": ["cpu", "memory", "ephemeral-storage"]}}
                   for k in ("requests", "limits")},
}
_ENV_VAR = {
    "type": "object", "additionalProperties": False, "required": ["name"],
    "properties": {"name": _STR, "value": _STR, "valueFrom": {"type": "object"}},
}
_ENV = {"oneOf": [_STR_MAP, {"type": "array", "items": _ENV_VAR}]}
_NAMED_SOURCE = {  # kubernetes.SecretEnvSource / ConfigMapEnvSource
    "type": "object", "additionalProperties": False, "required": ["name"],
    "properties": {"name": _STR, "optional": _BOOL},
}
_SOURCES = {"type": "array", "items": _NAMED_SOURCE}
_TAG_LIMIT = {  # daemon.TagConcurrencyLimit (extra = forbid)
    "type": "object", "additionalProperties": False, "required": ["key", "limit"],
    "properties": {
        "key": _STR, "limit": _INT,
        "value": {"oneOf": [_STR, {"type": "object", "additionalProperties": False,
                                   "required": ["applyLimitPerUniqueValue"],
                                   "properties": {"applyLimitPerUniqueValue": _BOOL}}]},
    },
}
_THREADS = {"type": "object", "additionalProperties": False, "required": ["useThreads"],
            "properties": {"useThreads": _BOOL, "numWorkers": _INT, "numSubmitWorkers": _INT}}
_PURGE = {"oneOf": [_INT, {"type": "object", "additionalProperties": False,
                           "required": ["skipped", "success", "failure", "started"],
                           "properties": {k: _INT for k in ("skipped", "success", "failure", "started")}}]}

CHART_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    # DagsterHelmValues has extra="allow" only for the legacy `dagit` alias; anything else unknown is a typo.
    "propertyNames": {"enum": [
        "dagsterWebserver", "dagster-user-deployments", "postgresql", "generatePostgresqlPasswordSecret",
        "generateCeleryConfigSecret", "rabbitmq", "redis", "flower", "ingress", "imagePullSecrets",
        "computeLogManager", "scheduler", "runLauncher", "pythonLogs", "dagsterDaemon", "busybox", "migrate",
        "telemetry", "serviceAccount", "global", "retention", "concurrency", "additionalInstanceConfig",
    ]},
    "properties": {
        "global": {"type": "object", "additionalProperties": False, "properties": {
            "postgresqlSecretName": _STR, "dagsterHome": _STR, "serviceAccountName": _STR,
            "celeryConfigSecretName": _STR}},
        "postgresql": {"type": "object", "additionalProperties": False, "properties": {
            "image": _IMAGE, "enabled": _BOOL, "postgresqlHost": _STR, "postgresqlUsername": _STR,
            "postgresqlPassword": _STR, "postgresqlDatabase": _STR, "postgresqlParams": {"type": "object"},
            "postgresqlScheme": {"type": ["string", "null"]},
            "service": {"type": "object", "additionalProperties": False, "required": ["port"],
                        "properties": {"port": _INT}}}},
        "generatePostgresqlPasswordSecret": _BOOL,
        "dagsterWebserver": {"type": "object", "additionalProperties": False, "properties": {
            "replicaCount": _INT, "image": _IMAGE, "nameOverride": _STR, "pathPrefix": {"type": ["string", "null"]},
            "env": _ENV, "envConfigMaps": _SOURCES, "envSecrets": _SOURCES, "resources": _RESOURCES,
            "nodeSelector": _STR_MAP, "labels": _STR_MAP, "annotations": _STR_MAP, "enableReadOnly": _BOOL,
            "dbStatementTimeout": _INT, "dbPoolRecycle": _INT, "logLevel": _STR}},
        "dagster-user-deployments": {"type": "object", "additionalProperties": False, "properties": {
            "enabled": _BOOL, "enableSubchart": _BOOL, "imagePullSecrets": {"type": "array"},
            "deployments": {"type": "array", "minItems": 1, "items": {
                "type": "object", "additionalProperties": False,
                "required": ["name", "image", "port"],
                "properties": {
                    "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
                    "image": _IMAGE, "dagsterApiGrpcArgs": {"type": "array", "items": _STR},
                    "codeServerArgs": {"type": "array", "items": _STR}, "port": _INT,
                    "includeConfigInLaunchedRuns": {"type": "object", "additionalProperties": False,
                                                    "required": ["enabled"], "properties": {"enabled": _BOOL}},
                    "env": _ENV, "envConfigMaps": _SOURCES, "envSecrets": _SOURCES, "resources": _RESOURCES,
                    "labels": _STR_MAP, "annotations": _STR_MAP, "nodeSelector": _STR_MAP,
                }}}}},
        "runLauncher": {"type": "object", "additionalProperties": False, "required": ["type", "config"],
                        "properties": {
            "type": {"enum": ["CeleryK8sRunLauncher", "K8sRunLauncher", "CustomRunLauncher"]},
            "config": {"type": "object", "additionalProperties": False, "properties": {
                "k8sRunLauncher": {"type": "object", "additionalProperties": False, "properties": {
                    "image": _IMAGE, "imagePullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
                    "jobNamespace": {"type": ["string", "null"]}, "loadInclusterConfig": _BOOL,
                    "kubeconfigFile": {"type": ["string", "null"]}, "envConfigMaps": _SOURCES,
                    "envSecrets": _SOURCES, "envVars": {"type": "array", "items": _STR},
                    "volumeMounts": {"type": "array"}, "volumes": {"type": "array"}, "labels": _STR_MAP,
                    "failPodOnRunFailure": _BOOL, "resources": _RESOURCES, "schedulerName": _STR,
                    "securityContext": {"type": "object"},
                    "runK8sConfig": {"type": "object", "additionalProperties": False, "properties": {
                        k: {"type": "object"} for k in ("containerConfig", "podSpecConfig",
                                                        "podTemplateSpecMetadata", "jobSpecConfig", "jobMetadata")}},
                }}}}}},
        "dagsterDaemon": {"type": "object", "additionalProperties": False, "properties": {
            "enabled": _BOOL, "image": _IMAGE, "heartbeatTolerance": _INT,
            "runCoordinator": {"type": "object", "additionalProperties": False,
                               "required": ["enabled", "type", "config"], "properties": {
                "enabled": _BOOL, "type": {"enum": ["QueuedRunCoordinator", "CustomRunCoordinator"]},
                "config": {"type": "object", "additionalProperties": False, "properties": {
                    "queuedRunCoordinator": {"type": "object", "additionalProperties": False, "properties": {
                        "maxConcurrentRuns": _INT, "tagConcurrencyLimits": {"type": "array", "items": _TAG_LIMIT},
                        "dequeueIntervalSeconds": _INT, "dequeueNumWorkers": _INT, "dequeueUseThreads": _BOOL,
                        "blockOpConcurrencyLimitedRuns": {"type": "object"}}}}}}},
            # Free-form in the chart (Dict[str, Any]); these are the keys its template reads.
            "runMonitoring": {"type": "object", "additionalProperties": False, "properties": {
                "enabled": _BOOL, "startTimeoutSeconds": _INT, "cancelTimeoutSeconds": _INT,
                "maxResumeRunAttempts": _INT, "pollIntervalSeconds": _INT, "freeSlotsAfterRunEndSeconds": _INT}},
            "runRetries": {"type": "object", "additionalProperties": False, "properties": {
                "enabled": _BOOL, "maxRetries": _INT}},
            "sensors": _THREADS, "schedules": _THREADS,
            "env": _ENV, "envConfigMaps": _SOURCES, "envSecrets": _SOURCES, "resources": _RESOURCES,
            "labels": _STR_MAP, "annotations": _STR_MAP, "nodeSelector": _STR_MAP}},
        "additionalInstanceConfig": {"type": "object"},
        "retention": {"type": "object", "additionalProperties": False, "properties": {
            "enabled": _BOOL,
            **{k: {"type": "object", "additionalProperties": False, "required": ["purgeAfterDays"],
                   "properties": {"purgeAfterDays": _PURGE}} for k in ("sensor", "schedule", "autoMaterialize")}}},
        "telemetry": {"type": "object", "additionalProperties": False, "properties": {"enabled": _BOOL}},
    },
}


# ##### RENDERING (what templates/configmap-instance.yaml makes of the values)


def render_instance(values: dict[str, Any], namespace: str = "catalog", release: str = "dagster") -> dict[str, Any]:
    """The chart's dagster.yaml for these values, for the templates this file's keys reach."""
    pg = values["postgresql"]
    storage = {"postgres_db": {
        "username": pg["postgresqlUsername"], "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"], "db_name": pg["postgresqlDatabase"], "port": pg["service"]["port"],
        "params": pg.get("postgresqlParams", {}),
        **({"scheme": pg["postgresqlScheme"]} if pg.get("postgresqlScheme") else {}),
    }}
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    launcher: dict[str, Any] = {
        "load_incluster_config": k8s["loadInclusterConfig"],
        "job_namespace": k8s.get("jobNamespace") or namespace,
        "image_pull_policy": k8s["imagePullPolicy"],
        "service_account_name": f"{release}",
        "dagster_home": values.get("global", {}).get("dagsterHome", "/opt/dagster/dagster_home"),
        "instance_config_map": f"{release}-instance",
        "postgres_password_secret": values.get("global", {}).get("postgresqlSecretName", "dagster-postgresql-secret"),
    }
    if k8s.get("envSecrets"):
        launcher["env_secrets"] = [s["name"] for s in k8s["envSecrets"]]
    if k8s.get("envConfigMaps"):
        launcher["env_config_maps"] = [s["name"] for s in k8s["envConfigMaps"]]
    if k8s.get("resources"):
        launcher["resources"] = k8s["resources"]
    run_k8s = {
        {"containerConfig": "container_config", "podSpecConfig": "pod_spec_config",
         "podTemplateSpecMetadata": "pod_template_spec_metadata", "jobSpecConfig": "job_spec_config",
         "jobMetadata": "job_metadata"}[key]: value
        for key, value in (k8s.get("runK8sConfig") or {}).items() if value
    }
    if run_k8s:
        launcher["run_k8s_config"] = run_k8s

    daemon = values["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    coordinator_config: dict[str, Any] = {"max_concurrent_runs": queued.get("maxConcurrentRuns", -1)}
    if queued.get("tagConcurrencyLimits"):
        coordinator_config["tag_concurrency_limits"] = queued["tagConcurrencyLimits"]
    for key, name in (("dequeueIntervalSeconds", "dequeue_interval_seconds"),
                      ("dequeueUseThreads", "dequeue_use_threads"), ("dequeueNumWorkers", "dequeue_num_workers")):
        if queued.get(key):
            coordinator_config[name] = queued[key]

    rendered: dict[str, Any] = {
        "scheduler": {"module": "dagster.core.scheduler", "class": "DagsterDaemonScheduler"},
        "schedule_storage": {"module": "dagster_postgres.schedule_storage", "class": "PostgresScheduleStorage", "config": storage},
        "run_launcher": {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": launcher},
        "run_storage": {"module": "dagster_postgres.run_storage", "class": "PostgresRunStorage", "config": storage},
        "event_log_storage": {"module": "dagster_postgres.event_log", "class": "PostgresEventLogStorage", "config": storage},
        "run_coordinator": {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator", "config": coordinator_config},
        "compute_logs": {"module": "dagster.core.storage.noop_compute_log_manager", "class": "NoOpComputeLogManager"},
        "telemetry": {"enabled": values.get("telemetry", {}).get("enabled", True)},
    }
    monitoring = daemon.get("runMonitoring", {})
    if monitoring.get("enabled"):
        rendered["run_monitoring"] = {
            "enabled": True, "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            **({"cancel_timeout_seconds": monitoring["cancelTimeoutSeconds"]} if "cancelTimeoutSeconds" in monitoring else {}),
            **({"max_resume_run_attempts": monitoring["maxResumeRunAttempts"]} if "maxResumeRunAttempts" in monitoring else {}),
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
            "free_slots_after_run_end_seconds": monitoring["freeSlotsAfterRunEndSeconds"],
        }
    retries = daemon.get("runRetries", {})
    if retries.get("enabled"):
        rendered["run_retries"] = {"enabled": True, **({"max_retries": retries["maxRetries"]} if retries.get("maxRetries") else {})}
    for key in ("sensors", "schedules"):
        threads = daemon.get(key, {})
        if threads.get("useThreads"):
            rendered[key] = {"use_threads": True, **({"num_workers": threads["numWorkers"]} if threads.get("numWorkers") else {})}
    retention = values.get("retention", {})
    if retention.get("enabled"):
        rendered["retention"] = {k: {"purge_after_days": retention[key]["purgeAfterDays"]}
                                 for key, k in (("sensor", "sensor"), ("schedule", "schedule"), ("autoMaterialize", "auto_materialize"))
                                 if key in retention}
    # additionalInstanceConfig is appended as YAML after everything else: a repeated key wins.
    rendered.update(values.get("additionalInstanceConfig") or {})
    return rendered


# ##### TESTS


@pytest.fixture(autouse=True)
def _production_extra():
    from test_production_instance import require

    require("jsonschema")
    require("dagster_k8s")


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def test_helm_values_fit_the_chart_schema(values):
    import jsonschema

    jsonschema.validate(values, CHART_SCHEMA)


@pytest.mark.parametrize("path, bad", [
    (("dagsterDaemon", "runCoordinator", "config", "queuedRunCoordinator", "maxConcurentRuns"), 8),
    (("runLauncher", "config", "k8sRunLauncher", "imagePullPolicy"), "Sometimes"),
    (("dagsterDaemon", "runMonitoring", "freeSlotsAfterRunEnd"), 30),
    (("dagster-user-deployments", "deployments", 0, "port"), "3030"),
    (("postgres",), {"enabled": False}),
])
def test_chart_schema_refuses_typos_and_wrong_types(values, path, bad):
    import copy

    import jsonschema

    broken = copy.deepcopy(values)
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = bad
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, CHART_SCHEMA)


def test_rendered_instance_is_valid_dagster_and_dagster_k8s_config(values, tmp_path, monkeypatch):
    from dagster._config import process_config, resolve_to_config_type
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_k8s import K8sRunLauncher
    from dagster_postgres import PostgresRunStorage

    rendered = render_instance(values)
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(rendered))
    dagster_instance_config(str(tmp_path))  # raises on anything Dagster's instance schema refuses

    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "secret")
    for klass, section in ((K8sRunLauncher, "run_launcher"), (QueuedRunCoordinator, "run_coordinator"),
                           (PostgresRunStorage, "run_storage")):
        result = process_config(resolve_to_config_type(klass.config_type()), rendered[section].get("config", {}))
        assert result.success, (section, [e.message for e in result.errors])
    assert rendered["run_storage"]["config"]["postgres_db"]["scheme"] == "postgresql+psycopg2"


def test_kubernetes_instance_matches_deploy_dagster_yaml(values):
    production = yaml.safe_load((REPO / "deploy" / "dagster.yaml").read_text())
    rendered = render_instance(values)
    assert rendered["run_coordinator"]["config"]["tag_concurrency_limits"] == \
        production["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert rendered["run_retries"] == production["run_retries"]
    assert rendered["run_monitoring"]["free_slots_after_run_end_seconds"] == \
        production["run_monitoring"]["free_slots_after_run_end_seconds"]
    assert rendered["run_monitoring"]["enabled"] and rendered["telemetry"] == {"enabled": False}


def test_helm_values_match_the_project(values):
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("--module-name") + 1] == pyproject["tool"]["dagster"]["module_name"]
    pins = dict(re.findall(r'"(dagster(?:-[a-z]+)?)==([0-9.]+)"', (REPO / "pyproject.toml").read_text()))
    assert pins["dagster"] == DAGSTER_VERSION
    for component in ("dagsterWebserver", "dagsterDaemon"):
        assert str(values[component]["image"]["tag"]) == DAGSTER_VERSION, component
    env = {e["name"] for e in deployment["env"]}
    assert {"CATALOG_PIPELINES_PROVIDERS", "CATALOG_PIPELINES_DATA_DIR"} <= env
    # The database URL and the pseudonym key are secrets, never plain values in this file.
    assert not env & {"CATALOG_DATABASE_URL", "CATALOG_PIPELINES_PSEUDONYM_KEY"}
    assert deployment["envSecrets"] == values["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"]
