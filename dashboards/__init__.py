"""The dashboards site: plotly figures and a static, offline site writer (no Dagster, no database).

`build_site(inputs, out_dir, access)` writes the site from a `SiteInputs` (frames loaded by the
`dashboards_site` asset or the `catalog-pipelines dashboards build` command); `Access` restricts it
to what one audience may see under the RBAC policy (analytics/rbac.py). See docs/dashboards.md.
"""

from __future__ import annotations

from dashboards.access import Access
from dashboards.inputs import SiteInputs
from dashboards.site import SiteLeakError, SiteReport, build_site

__all__ = ["Access", "SiteInputs", "SiteLeakError", "SiteReport", "build_site"]
