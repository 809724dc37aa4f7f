"""benchmarks/peer_compare.py in --smoke mode: it runs end to end and its figures are consistent."""

from __future__ import annotations

import importlib.util
import json

import pytest

from peer import EXPECTED_TOTAL, PeerUnavailable, REPO_ROOT, _in_ci, check_prerequisites

pytestmark = pytest.mark.peer


def load_benchmark():
    spec = importlib.util.spec_from_file_location("peer_compare", REPO_ROOT / "benchmarks" / "peer_compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peer_compare_smoke_reports_consistent_figures(tmp_path, capsys):
    try:
        check_prerequisites()
    except PeerUnavailable as exc:
        if _in_ci():
            pytest.fail(f"CI is set and the Backstage peer cannot run: {exc}", pytrace=False)
        pytest.skip(str(exc))
    out = tmp_path / "figures.json"
    figures = load_benchmark().main(["--smoke", "--json", str(out)])
    printed = capsys.readouterr().out

    assert json.loads(out.read_text()) == figures
    assert figures["entities_served"] == EXPECTED_TOTAL
    assert figures["entities_read_by_provider"] == EXPECTED_TOTAL
    assert 0 < figures["backstage_start_to_ready_s"] <= figures["backstage_start_to_all_served_s"]
    assert figures["backstage_read_by_query_s"] > 0 and figures["provider_read_from_peer_s"] > 0
    assert "process start -> all entities served" in printed
    if "file_path" in figures:
        counts = figures["file_path_counts"]
        # The two roots reach 66 entity documents (the peer's README); each is accepted or rejected.
        assert counts["accepted"] + counts["rejected"] == 66
        assert counts["accepted"] >= EXPECTED_TOTAL - 2  # all but Backstage's 2 generated Locations
        assert figures["file_path_cold_process_s"] > figures["file_path_warm_s"] > 0
        assert "ratio: Backstage start->served / our file path" in printed
