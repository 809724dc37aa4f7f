"""One vocabulary for every door (the dashboards site, the CLI): the words for the same thing are
the same everywhere.

- Anonymity: a figure about fewer people than the threshold k is **suppressed** (the word the
  survey and usage code and their tables use: the `suppressed` columns), never "hidden".
- Certification levels: a level is its number and the name the scorecards config gives it
  (config/scorecards/*.yaml `tracks[].levels[].name`): "Level 2 · Silver"; level 0 is
  "Not certified". Tracks name their levels differently, so a chart over several tracks labels a
  level by its number and every track's name for it ("Level 1 · Bronze / Scanned").
- Codes (`dangling_relation`, `open_critical`) are shown by their label ("Dangling relation"):
  `label(code)`, one map for the site and the CLI.

Stdlib only (model/).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SUPPRESSED = "suppressed"
SUPPRESSED_WHY = "fewer people than the anonymity threshold k"
NOT_CERTIFIED = "Not certified"

# Codes whose label is not simply the code with its underscores as spaces and a capital first letter.
LABELS: dict[str, str] = {
    "dangling_relation": "Dangling relation",
    "component_without_system": "Component without system",
    "unowned": "No owner",
    "owner_not_found": "Owner not in the catalog",
    "open_critical": "Critical",
    "open_high": "High",
    "open_medium": "Medium",
    "open_low": "Low",
    "not_reported": "Not reported",
    "api": "API",
    "ci": "CI",
    "mau": "MAU",
    "wau": "WAU",
    "dau": "DAU",
    "backing off": "Backing off",
}
# Entity kinds, severities, outcomes and changes: the words a legend shows for them.
LABELS.update({w: w.capitalize() for w in (
    "component", "resource", "system", "domain", "group", "user", "template", "location",
    "error", "warning", "info", "success", "denied", "failure", "added", "changed", "removed", "rejected", "unchanged")})

CODE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")


def label(code: object) -> str:
    """The display label of a code: from LABELS, else `snake_case` → "Snake case"; other text as is."""
    text = "" if code is None else str(code)
    if text in LABELS:
        return LABELS[text]
    if CODE.match(text):
        return text.replace("_", " ").capitalize()
    return text


def is_code(text: str) -> bool:
    """A snake_case code that should never reach a reader unlabelled."""
    return bool(CODE.match(text))


def level_label(number: int, names: str | Iterable[str] | None = None) -> str:
    """"Level 2 · Silver"; "Not certified" for level 0; names of several tracks joined by " / "."""
    if int(number) == 0:
        return NOT_CERTIFIED
    if names is None:
        return f"Level {int(number)}"
    if isinstance(names, str):
        names = [names]
    unique = list(dict.fromkeys(n for n in names if n and n.lower() not in ("nan", "none")))
    return f"Level {int(number)} · {' / '.join(unique)}" if unique else f"Level {int(number)}"


def plural(noun: str, n: int = 2) -> str:
    """English plural of a kind or dimension name ("entity" → "entities", "API" → "APIs")."""
    if n == 1:
        return noun
    if noun.endswith("y") and noun[-2:-1].lower() not in "aeiou":
        return noun[:-1] + "ies"
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    return noun + "s"
