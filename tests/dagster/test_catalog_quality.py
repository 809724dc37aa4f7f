"""Catalog data quality: the great_expectations suites catch duplicate refs, missing required
fields, malformed refs, unresolvable owners and dangling relation targets, and run as Dagster
asset checks on the catalog snapshot. (One module: great_expectations takes ~5 s to import.)"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from catalog_pipelines.assets.catalog_quality import (
    OWNERS_RESOLVABLE,
    REF_FORMAT,
    RELATION_TARGETS,
    REQUIRED_FIELDS,
    UNIQUE_REFS,
    catalog_quality_checks,
    validate_catalog,
)
from catalog_pipelines.assets.ingestion import CATALOG_SNAPSHOT
from catalog_pipelines.resources import CatalogDatabase
from helpers import seed_catalog


def entities(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["ref", "kind", "namespace", "name", "owner"])


GOOD = [
    ("group:default/team-a", "group", "default", "team-a", None),
    ("component:default/a", "component", "default", "a", "group:default/team-a"),
    ("api:default/a-api", "api", "default", "a-api", "group:default/team-a"),
]
RELATIONS = pd.DataFrame({"source": ["component:default/a", "api:default/a-api"], "type": ["providesApi", "apiProvidedBy"], "target": ["api:default/a-api", "component:default/a"]})


def test_clean_catalog_passes_every_check():
    outcomes = validate_catalog(entities(GOOD), RELATIONS)
    assert {name: o.passed for name, o in outcomes.items()} == {UNIQUE_REFS: True, REQUIRED_FIELDS: True, REF_FORMAT: True, OWNERS_RESOLVABLE: True, RELATION_TARGETS: True}


def test_each_defect_fails_its_own_check_with_examples():
    bad = entities([
        *GOOD,
        ("component:default/a", "component", "default", "a", "group:default/team-a"),  # duplicate
        ("component:default/no-owner", "component", "default", "no-owner", None),  # owner missing
        ("Component:default/Bad Name", "component", "default", "Bad Name", "group:default/team-a"),  # not canonical
        ("component:default/orphan", "component", "default", "orphan", "group:default/gone"),  # owner unknown
    ])
    relations = pd.concat([RELATIONS, pd.DataFrame({"source": ["component:default/a"], "type": ["dependsOn"], "target": ["resource:default/missing-db"]})], ignore_index=True)
    outcomes = validate_catalog(bad, relations, owner_min=0.9, relation_min=0.9)
    assert {name: o.passed for name, o in outcomes.items()} == {UNIQUE_REFS: False, REQUIRED_FIELDS: False, REF_FORMAT: False, OWNERS_RESOLVABLE: False, RELATION_TARGETS: False}
    assert outcomes[UNIQUE_REFS].metadata["entities.ref examples"] == ["component:default/a"]
    assert outcomes[REF_FORMAT].metadata["entities.ref examples"] == ["Component:default/Bad Name"]
    assert outcomes[REQUIRED_FIELDS].metadata["owned.owner unexpected"] == 1
    assert outcomes[OWNERS_RESOLVABLE].metadata["owned.owner examples"] == ["group:default/gone"]
    assert outcomes[RELATION_TARGETS].metadata["ratio"] == round(2 / 3, 6)
    assert outcomes[RELATION_TARGETS].metadata["relations.target examples"] == ["resource:default/missing-db"]
    assert outcomes[OWNERS_RESOLVABLE].metadata["owned.owner unexpected"] == 1  # the missing owner is not counted twice


def test_ratio_checks_pass_at_or_above_their_threshold():
    relations = pd.concat([RELATIONS, pd.DataFrame({"source": ["component:default/a"], "type": ["dependsOn"], "target": ["resource:default/missing-db"]})], ignore_index=True)
    assert validate_catalog(entities(GOOD), relations, relation_min=0.6)[RELATION_TARGETS].passed
    assert not validate_catalog(entities(GOOD), relations, relation_min=0.7)[RELATION_TARGETS].passed


def test_checks_run_as_dagster_asset_checks_on_the_catalog_snapshot(catalog_url, dagster_instance):
    url = catalog_url
    seed_catalog(url, [
        {"apiVersion": "backstage.io/v1alpha1", "kind": "Group", "metadata": {"name": "team-a"}, "spec": {"type": "team", "children": []}},
        {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "a"}, "spec": {"type": "service", "lifecycle": "production", "owner": "team-a", "dependsOn": ["resource:default/missing-db"]}},
    ])

    @dg.asset(key=CATALOG_SNAPSHOT)
    def catalog_snapshot() -> None:
        return None

    result = dg.materialize([catalog_snapshot, catalog_quality_checks], resources={"catalog": CatalogDatabase(url=url)},
                            instance=dagster_instance)
    checks = {e.check_name: (e.passed, e.severity) for e in result.get_asset_check_evaluations()}
    assert checks[UNIQUE_REFS] == (True, dg.AssetCheckSeverity.ERROR)
    assert checks[OWNERS_RESOLVABLE] == (True, dg.AssetCheckSeverity.WARN)
    # one dependsOn points at an entity that does not exist: well below the 98% threshold
    assert checks[RELATION_TARGETS] == (False, dg.AssetCheckSeverity.ERROR)
