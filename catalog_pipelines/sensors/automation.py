"""`insights_automation_sensor`: evaluates the automation conditions (automation.py) of every asset.

Facts and scorecards run on automation conditions (each fact source on its own cadence); Dagster's
automation sensor is stopped by default, so this one starts running.
"""

from __future__ import annotations

import dagster as dg


def build_automation_sensor() -> dg.AutomationConditionSensorDefinition:
    return dg.AutomationConditionSensorDefinition(
        "insights_automation_sensor", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Evaluates the automation conditions of every asset (each fact source on its own cron, scorecard "
            "results hourly, eager insights after the catalog snapshot, dashboards after their sources) and "
            "launches the runs they ask for. Runs it launches carry the `dagster/from_automation_condition` tag."
        ),
    )
