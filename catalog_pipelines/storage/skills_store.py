"""The skills exchange's profile file: `profiles.csv` beside the taxonomy in the skills folder
(`config/skills/` by default), columns `user, skill, level, wants_to_learn[, mentor_capacity, gigs]`
(`analytics.health.skills.profiles_from_csv` turns the rows into profiles).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PROFILES_FILE = "profiles.csv"


def profiles_path(folder: str | Path) -> Path:
    return Path(folder) / PROFILES_FILE


def read_profiles_csv(path: str | Path) -> pd.DataFrame:
    """Every cell as a string (blank cells stay blank)."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)
