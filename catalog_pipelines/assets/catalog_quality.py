"""Catalog data quality: great_expectations 1.x suites run as Dagster asset checks on the catalog
snapshot (the output of ingestion).

Five checks, one GX validation run for all of them:

| check | expectation | severity |
| --- | --- | --- |
| `unique_entity_refs` | every canonical ref appears once | ERROR |
| `required_entity_fields` | ref, kind, namespace and name are set; owned kinds have an owner | ERROR |
| `entity_ref_format` | refs are canonical `kind:namespace/name` in Backstage's character rules | ERROR |
| `owners_resolvable` | at least `OWNER_MIN_RATIO` of owners name an entity in the catalog | WARN |
| `relation_targets_exist` | at least `RELATION_TARGET_MIN_RATIO` of relation targets exist | ERROR |

great_expectations is imported inside the check (it takes ~5 s to import) so that loading the
code location stays fast. `dagster-ge` is not used: it requires great_expectations < 1 and
pandas < 3.
"""

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import dagster as dg

from catalog_pipelines.assets.ingestion import CATALOG_SNAPSHOT
from catalog_pipelines.resources import CatalogDatabase
from catalog_pipelines.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

UNIQUE_REFS = "unique_entity_refs"
REQUIRED_FIELDS = "required_entity_fields"
REF_FORMAT = "entity_ref_format"
OWNERS_RESOLVABLE = "owners_resolvable"
RELATION_TARGETS = "relation_targets_exist"

# Orphaned owners happen (a team is renamed before its services are): warn below 95%.
OWNER_MIN_RATIO = Settings.from_env().quality_owner_min_ratio
# Dangling relation targets break dependency views; fail below 98%.
RELATION_TARGET_MIN_RATIO = Settings.from_env().quality_relation_target_min_ratio

OWNED_KINDS = ("component", "api", "resource", "system", "domain", "template")

# Canonical (lower-case) ref: Backstage's kind, namespace (DNS label) and name rules.
REF_PATTERN = r"^[a-z][a-z0-9]*:[a-z0-9]+(?:-[a-z0-9]+)*/[a-z0-9]+(?:[-_.][a-z0-9]+)*$"

SEVERITY = {
    UNIQUE_REFS: dg.AssetCheckSeverity.ERROR,
    REQUIRED_FIELDS: dg.AssetCheckSeverity.ERROR,
    REF_FORMAT: dg.AssetCheckSeverity.ERROR,
    OWNERS_RESOLVABLE: dg.AssetCheckSeverity.WARN,
    RELATION_TARGETS: dg.AssetCheckSeverity.ERROR,
}
DESCRIPTIONS = {
    UNIQUE_REFS: "Every entity ref is unique in the catalog.",
    REQUIRED_FIELDS: "ref, kind, namespace and name are set on every entity; owned kinds (component, api, resource, system, domain, template) have an owner.",
    REF_FORMAT: "Every ref is canonical `kind:namespace/name` and follows Backstage's naming rules.",
    OWNERS_RESOLVABLE: f"At least {OWNER_MIN_RATIO:.0%} of owner refs resolve to an entity in the catalog.",
    RELATION_TARGETS: f"At least {RELATION_TARGET_MIN_RATIO:.0%} of relation targets exist in the catalog.",
}


@dataclass
class CheckOutcome:
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)


# The checks that ask whether a ref names an entity of the catalog: check -> (batch, column).
MEMBERSHIP = {OWNERS_RESOLVABLE: ("owned", "owner"), RELATION_TARGETS: ("relations", "target")}
RESOLVES = "__resolves"  # suffix of the flag column GX validates for them


def quality_frames(entities: "pd.DataFrame", relations: "pd.DataFrame") -> dict[str, "pd.DataFrame"]:
    """The three batches the suites validate: all entities, owned entities, relations."""
    ents = entities[["ref", "kind", "namespace", "name", "owner"]].copy()
    owned = ents[ents["kind"].astype(str).str.lower().isin(OWNED_KINDS)][["ref", "owner"]].reset_index(drop=True)
    return {"entities": ents.reset_index(drop=True), "owned": owned, "relations": relations[["source", "type", "target"]].reset_index(drop=True)}


def validate_catalog(entities: "pd.DataFrame", relations: "pd.DataFrame", *, owner_min: float = OWNER_MIN_RATIO, relation_min: float = RELATION_TARGET_MIN_RATIO) -> dict[str, CheckOutcome]:
    """Run the GX suites over the catalog frames; one outcome per check name (no Dagster needed)."""
    import great_expectations as gx
    import pandas as pd
    from great_expectations.data_context.types.base import ProgressBarsConfig

    frames = quality_frames(entities, relations)
    # Membership in the catalog is computed here and GX validates the flag (True where the ref
    # resolves, missing where there is no ref): given the 200k known refs as a `value_set`, GX
    # re-serialised that list through pydantic on every access of the expectation's
    # configuration (~1,000 times a run): 60 s of a 200k catalog's checks, for a set lookup.
    known = pd.Index(frames["entities"]["ref"].dropna().unique())
    for batch_name, column in MEMBERSHIP.values():
        values = frames[batch_name][column]
        frames[batch_name][f"{column}{RESOLVES}"] = values.isin(known).astype(object).where(values.notna(), None)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("catalog")
    E = gx.expectations
    suites: dict[str, list[Any]] = {
        "entities": [
            E.ExpectColumnValuesToBeUnique(column="ref", meta={"check": UNIQUE_REFS}),
            *[E.ExpectColumnValuesToNotBeNull(column=c, meta={"check": REQUIRED_FIELDS}) for c in ("ref", "kind", "namespace", "name")],
            E.ExpectColumnValuesToMatchRegex(column="ref", regex=REF_PATTERN, meta={"check": REF_FORMAT}),
        ],
        "owned": [
            E.ExpectColumnValuesToNotBeNull(column="owner", meta={"check": REQUIRED_FIELDS}),
            # Missing owners are the required-fields check's concern; GX skips nulls here.
            E.ExpectColumnValuesToBeInSet(column=f"owner{RESOLVES}", value_set=[True], mostly=owner_min, meta={"check": OWNERS_RESOLVABLE}),
        ],
        "relations": [
            E.ExpectColumnValuesToBeInSet(column=f"target{RESOLVES}", value_set=[True], mostly=relation_min, meta={"check": RELATION_TARGETS}),
        ],
    }
    outcomes: dict[str, CheckOutcome] = {name: CheckOutcome(passed=True, metadata={"expectations": 0}) for name in SEVERITY}
    for batch_name, expectations in suites.items():
        frame = frames[batch_name]
        batch = source.add_dataframe_asset(batch_name).add_batch_definition_whole_dataframe("all").get_batch(batch_parameters={"dataframe": frame})
        suite = gx.ExpectationSuite(name=f"catalog_{batch_name}", expectations=expectations)
        result = batch.validate(suite)
        for item in result.results:
            name = item.expectation_config.meta["check"]
            detail = item.result or {}
            out = outcomes[name]
            out.passed = out.passed and bool(item.success)
            out.metadata["expectations"] += 1
            column = item.expectation_config.kwargs.get("column")
            flag = column.endswith(RESOLVES)
            column = column.removesuffix(RESOLVES)
            key = f"{batch_name}.{column}"
            element_count = int(detail.get("element_count", len(frame)))
            unexpected = int(detail.get("unexpected_count") or 0)
            missing = int(detail.get("missing_count") or 0)
            checked = element_count - (missing if item.expectation_config.type != "expect_column_values_to_not_be_null" else 0)
            out.metadata[f"{key} rows"] = element_count
            out.metadata[f"{key} unexpected"] = unexpected
            if name in (OWNERS_RESOLVABLE, RELATION_TARGETS):
                out.metadata["ratio"] = round(1.0 - unexpected / checked, 6) if checked else 1.0
                out.metadata["threshold"] = owner_min if name == OWNERS_RESOLVABLE else relation_min
            if unexpected:
                if flag:  # the refs that do not resolve (GX's partial list: the first 20 unexpected rows)
                    frame_values = frame[column][frame[f"{column}{RESOLVES}"].eq(False).to_numpy(bool)].head(20)
                    samples = sorted({str(v) for v in frame_values})[:10]
                else:
                    samples = sorted({str(v) for v in (detail.get("partial_unexpected_list") or [])})[:10]
                if samples:
                    out.metadata[f"{key} examples"] = samples
    return outcomes


# What marks these checks as Great Expectations checks in the UI: the op's kind, a tag, and each
# check's metadata and description.
GX_KIND = "great_expectations"
GX_TAGS = {"catalog/check_suite": GX_KIND}


@dg.multi_asset_check(
    name="catalog_quality_checks",
    specs=[dg.AssetCheckSpec(name, asset=CATALOG_SNAPSHOT, description=f"[Great Expectations] {DESCRIPTIONS[name]}",
                             metadata={"check_suite": GX_KIND, "severity": SEVERITY[name].value})
           for name in SEVERITY],
    # Each check can be executed on its own (the UI's Execute button): the suites are cheap, and only
    # the selected checks report.
    can_subset=True,
    compute_kind=GX_KIND,
    op_tags=GX_TAGS,
    description="Great Expectations 1.x suites over the stored catalog: unique refs, required fields, "
                "ref format, resolvable owners, existing relation targets.",
)
def catalog_quality_checks(context: dg.AssetCheckExecutionContext, catalog: CatalogDatabase):
    """great_expectations suites over the stored catalog: unique refs, required fields, ref
    format, resolvable owners, existing relation targets."""
    from catalog_pipelines.storage.frames import entities_frame, relations_frame

    engine = catalog.get_engine()
    # (no bodies: the checks read ref, kind, namespace, name and owner, which SQL gives)
    outcomes = validate_catalog(entities_frame(engine, with_body=False), relations_frame(engine))
    selected = {key.name for key in context.selected_asset_check_keys}
    for name, outcome in outcomes.items():
        if name not in selected:
            continue
        yield dg.AssetCheckResult(
            asset_key=CATALOG_SNAPSHOT,
            check_name=name,
            passed=outcome.passed,
            severity=SEVERITY[name],
            metadata={k: dg.MetadataValue.json(v) if isinstance(v, list) else v for k, v in outcome.metadata.items()},
        )
