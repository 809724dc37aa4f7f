"""Survey metrics at scale: 100,000 responses x 30 questions x 8 waves.

    .venv/bin/python benchmarks/surveys.py                  # the issue's size
    .venv/bin/python benchmarks/surveys.py --responses 20000 --ingest-waves 0

An org of `--users` people (default: responses / 0.8, i.e. an 80% response rate) in 1 team per 100
people on average (log-normal sizes), under divisions, departments and one root, with a few managers
directly in divisions; a 30-question survey (24 Likert over 8 dimensions,
2 NPS, 2 single choice, 1 multi choice, 1 free text); 8 waves of synthetic answers with the planted
effects. Timed separately:

- **metrics**: `compute_insights` from the stored wave frames (every metric, interval, test, trend,
  choice share and comment, with the anonymity rules applied to every table layer);
- **ingest**: parsing, validating, matching and pseudonymising one wave's CSV export;
- **store**: writing the published tables to a SQLite catalog database.

Prints a Markdown table to paste into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analytics.org import OrgGraph  # noqa: E402
from analytics.pseudonymise import pseudonymise_series  # noqa: E402
from analytics.surveys.trends import WaveData, compute_insights, parse_survey  # noqa: E402
from analytics.surveys.ingest import TOKEN_DOMAIN, RespondentDirectory, ingest_wave  # noqa: E402
from analytics.surveys.synthetic import export_frame, generate_waves, invited_frame, stored_frame  # noqa: E402
from catalog_pipelines.services.surveys import read_export  # noqa: E402

DIMENSIONS = ("satisfaction", "productivity", "flow", "cognitive_load", "feedback_loops", "tooling", "collaboration", "learning")


def survey_definition(waves: int = 8, k: int = 5) -> dict:
    questions = [
        {"id": f"q{i:02d}", "type": "likert", "dimension": DIMENSIONS[i % len(DIMENSIONS)], "text": f"Likert item {i}"}
        for i in range(24)
    ]
    questions += [
        {"id": "enps", "type": "nps", "dimension": "satisfaction", "text": "Recommend as a workplace?"},
        {"id": "portal_nps", "type": "nps", "dimension": "tooling", "text": "Recommend the portal?"},
        {"id": "blocker", "type": "single_choice", "dimension": "productivity", "options": ["CI", "Reviews", "Meetings", "Specs", "None"]},
        {"id": "role", "type": "single_choice", "dimension": "collaboration", "options": ["Backend", "Frontend", "Data", "SRE", "Other"]},
        {"id": "wishlist", "type": "multi_choice", "dimension": "tooling", "options": ["CI", "Local dev", "Observability", "Docs", "Templates", "Access"]},
        {"id": "comments", "type": "free_text", "dimension": "satisfaction"},
    ]
    return {
        "id": "bench-pulse",
        "anonymity": {"min_group_size": k},
        "dimensions": {d: d.replace("_", " ").capitalize() for d in DIMENSIONS},
        "questions": questions,
        "waves": [{"id": f"w{i + 1}", "title": f"Wave {i + 1}"} for i in range(waves)],
    }


def org_of(users: int, team_size: int = 100, seed: int = 1) -> OrgGraph:
    rng = np.random.default_rng(seed)
    teams = max(1, users // team_size)
    divisions = max(1, teams // 10)
    departments = max(1, divisions // 10)
    groups = [("group:default/org", None, "Org", "organization")]
    groups += [(f"group:default/dept-{d}", "group:default/org", f"Dept {d}", "department") for d in range(departments)]
    groups += [(f"group:default/div-{v}", f"group:default/dept-{v % departments}", f"Div {v}", "division") for v in range(divisions)]
    groups += [(f"group:default/team-{t}", f"group:default/div-{t % divisions}", f"Team {t}", "team") for t in range(teams)]
    # Uneven team sizes (log-normal, from a handful of people to a few hundred), so that some teams
    # fall below k and suppression has work to do; a few managers sit directly in divisions.
    weights = rng.lognormal(0.0, 1.0, teams)
    team_of_user = rng.choice(teams, size=users, p=weights / weights.sum())
    frame = pd.DataFrame(groups, columns=["group_ref", "parent_ref", "display_name", "type"])
    home = [f"group:default/team-{t}" for t in team_of_user]
    for i in range(0, users, 250):
        home[i] = f"group:default/div-{(i // 250) % divisions}"
    members = pd.DataFrame({"user_ref": [f"user:default/u{i}" for i in range(users)], "group_ref": home})
    return OrgGraph.from_frames(frame, members)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--responses", type=int, default=100_000, help="responses per wave")
    parser.add_argument("--waves", type=int, default=8)
    parser.add_argument("--users", type=int, default=0, help="org size (default responses / 0.8)")
    parser.add_argument("--ingest-waves", type=int, default=1, help="waves to time through CSV ingestion")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    users = args.users or int(args.responses / 0.8)
    key = b"benchmark-key"

    t0 = time.perf_counter()
    org = org_of(users)
    survey = parse_survey(survey_definition(args.waves), source="benchmark")
    t_org = time.perf_counter() - t0

    t0 = time.perf_counter()
    generated, _ = generate_waves(survey, org, args.seed, response_rate=args.responses / users)
    t_generate = time.perf_counter() - t0

    t0 = time.perf_counter()
    waves = {}
    for wave_id, wave in generated.items():
        tokens = pseudonymise_series(TOKEN_DOMAIN + wave.answers["user_ref"].astype(str), key)
        counts = wave.invited["team_ref"].value_counts()
        waves[wave_id] = WaveData(stored_frame(survey, wave, tokens), pd.DataFrame({"team_ref": counts.index, "invited": counts.to_numpy()}))
    t_tokens = time.perf_counter() - t0
    total = sum(len(w.responses) for w in waves.values())

    t0, c0 = time.perf_counter(), time.process_time()
    insights = compute_insights(survey, waves, org)
    t_metrics, c_metrics = time.perf_counter() - t0, time.process_time() - c0

    ingest_rows, t_ingest, c_ingest = 0, 0.0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        directory = RespondentDirectory(org)
        for wave_id in list(generated)[: args.ingest_waves]:
            csv = Path(tmp) / f"{wave_id}.csv"
            inv = Path(tmp) / f"{wave_id}-invited.csv"
            export_frame(survey, generated[wave_id]).to_csv(csv, index=False)
            invited_frame(survey, generated[wave_id]).to_csv(inv, index=False)
            t0, c0 = time.perf_counter(), time.process_time()
            result = ingest_wave(survey, survey.wave(wave_id), [read_export(csv)], directory, key, read_export(inv))
            t_ingest += time.perf_counter() - t0
            c_ingest += time.process_time() - c0
            ingest_rows += result.stats["rows_read"]
            assert not result.errors, result.errors[:3]

        import sqlalchemy as sa

        from catalog_pipelines.model.insight_tables import SURVEYS
        from catalog_pipelines.storage.insights import write_frame

        engine = sa.create_engine(f"sqlite:///{tmp}/bench.db")
        t0, c0 = time.perf_counter(), time.process_time()
        rows = sum(write_frame(engine, table, getattr(insights, table.name)) for table in SURVEYS.tables())
        t_store, c_store = time.perf_counter() - t0, time.process_time() - c0
        engine.dispose()

    answers = total * len(survey.questions)
    print(f"# surveys benchmark ({platform.python_version()}, {os.cpu_count()} CPUs)")
    print(f"org: {len(org.groups)} groups, {users:,} users; survey: {len(survey.questions)} questions, {len(waves)} waves, k={survey.min_group_size}")
    print(f"setup: org {t_org:.1f} s, synthetic answers {t_generate:.1f} s, pseudonymised tokens {t_tokens:.1f} s")
    print()
    # CPU time is reported next to wall time: on shared cores the wall clock includes waiting.
    print("| step | input | wall | CPU | rate (CPU) |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| all metrics (`compute_insights`) | {total:,} responses x {len(survey.questions)} questions x {len(waves)} waves ({answers / 1e6:.1f} M answers) | {t_metrics:.2f} s | {c_metrics:.2f} s | {total / c_metrics:,.0f} responses/s |")
    if ingest_rows:
        print(f"| ingest CSV export (validate, match, pseudonymise) | {ingest_rows:,} responses ({args.ingest_waves} wave) | {t_ingest:.2f} s | {c_ingest:.2f} s | {ingest_rows / c_ingest:,.0f} responses/s |")
    print(f"| write published tables to SQLite | {rows:,} rows | {t_store:.2f} s | {c_store:.2f} s | {rows / c_store:,.0f} rows/s |")
    print()
    print(
        f"published: {len(insights.trends):,} trend rows, {len(insights.choices):,} choice rows, {len(insights.comments):,} comments; "
        f"cells below k: {insights.stats['cells_below_k']:,}, complementary: {insights.stats['cells_complementary']:,}; "
        f"disclosure problems: {len(insights.disclosures)}"
    )


if __name__ == "__main__":
    main()
