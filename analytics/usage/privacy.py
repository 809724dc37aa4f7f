"""Every person an event names is pseudonymised before the event is buffered or written.

The acting user is not the only person in a usage event: a profile view names the visited person
(`/catalog/default/user/jane.doe`, route attributes `{kind: user, name: jane.doe}`,
`context.entityRef: user:default/jane.doe`), and a search can be for a person's e-mail, entity
ref or name. `Scrubber` replaces each of them with the same keyed token the acting user gets
(`analytics.pseudonymise.pseudonymise` of the person's canonical user ref), so one person is one
token in every field and the figures still count and join, but no raw identity reaches disk.

What is recognised, in every text field (subject, attribute values, search terms):

- user entity refs, plain or URL-encoded (`user:default/jane`, `User:jane`, `user%3Adefault%2Fjane`);
- e-mail addresses, plain or with `%40`; a known person's address maps to that person's token,
  an unknown address to the token of the address itself;
- entity routes of kind user (`…/<namespace>/user/<name>`), and route attributes whose `kind` is
  `user` (their `name` and the matching path segment get the same token, so page normalisation
  still turns the path into `/catalog/:namespace/:kind/:name`);
- with a `People` directory (the catalog's User entities): a person's entity name
  (`jane.doe`) as a word, and their display name (`Jane Doe`) as a run of words, in any text.

Without a directory a bare first-and-last name in free text cannot be told from any other words;
the collector and the importer load the directory from the catalog when there is one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from analytics.pseudonymise import TOKEN_PREFIX, pseudonymise
from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref

# Backstage entity names and namespaces: [a-zA-Z0-9] then [-_.a-zA-Z0-9]. A ref's kind is matched
# case-insensitively and must start a word ("superuser:x" is not a ref). The separators may be
# URL-encoded (%3A, %2F) as they are when a ref sits in a path or query string.
_NAME = r"[A-Za-z0-9][-_.A-Za-z0-9]*"
USER_REF = re.compile(rf"(?<![\w%])user(?::|%3[Aa])(?:({_NAME})(?:/|%2[Ff]))?({_NAME})", re.IGNORECASE)
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_TOKEN = re.compile(rf"^{TOKEN_PREFIX}[0-9a-f]{{32}}$")
_WORD = re.compile(r"[\w][\w.'’-]*")
# Longest display name, in words, looked for in free text.
MAX_NAME_WORDS = 4
# Names shorter than this are too likely to be ordinary words to be treated as a person.
MIN_NAME_CHARS = 3


def is_token(value: str) -> bool:
    return bool(_TOKEN.match(value))


@dataclass
class People:
    """Who the catalog's users are: lower-cased names, display names and e-mails → canonical ref."""

    by_name: dict[str, str] = field(default_factory=dict)  # one word: entity name ("jane.doe")
    by_phrase: dict[tuple[str, ...], str] = field(default_factory=dict)  # display names as words
    by_email: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_entities(cls, entities: Iterable[Mapping[str, Any]]) -> "People":
        people = cls()
        for entity in entities:
            if str(entity.get("kind", "")).lower() != "user":
                continue
            meta = entity.get("metadata") or {}
            profile = (entity.get("spec") or {}).get("profile") or {}
            try:
                ref = parse_entity_ref({"kind": "user", "namespace": meta.get("namespace") or "default", "name": meta.get("name")}).canonical()
            except (EntityRefError, TypeError):
                continue
            people.add(ref, name=meta.get("name"), display_name=profile.get("displayName") or meta.get("title"), email=profile.get("email"))
        return people

    def add(self, ref: str, *, name: str | None = None, display_name: str | None = None, email: str | None = None) -> None:
        if isinstance(name, str) and len(name) >= MIN_NAME_CHARS:
            self.by_name.setdefault(name.lower(), ref)
        if isinstance(display_name, str):
            words = tuple(w.lower() for w in _WORD.findall(display_name))
            if words and len(words) <= MAX_NAME_WORDS and len(" ".join(words)) >= MIN_NAME_CHARS:
                if len(words) == 1:
                    self.by_name.setdefault(words[0], ref)
                else:
                    self.by_phrase.setdefault(words, ref)
        if isinstance(email, str) and "@" in email:
            self.by_email.setdefault(email.strip().lower(), ref)

    def __len__(self) -> int:
        return len(set(self.by_name.values()) | set(self.by_phrase.values()) | set(self.by_email.values()))


class Scrubber:
    """Pseudonymises every person in an event's fields with one key (see the module docstring).

    Results are cached per distinct input: a batch repeats the same pages and terms.
    """

    def __init__(self, key: bytes, people: People | None = None) -> None:
        self.key = key
        self.people = people or People()
        self._tokens: dict[str, str] = {}
        self._texts: dict[str, str] = {}
        self._events: dict[tuple[str, str | None], tuple[str, str | None]] = {}

    # --- one person ----------------------------------------------------------------------------

    def user(self, canonical_ref: str) -> str:
        """The token of a canonical user ref: the pseudonym the acting user gets."""
        token = self._tokens.get(canonical_ref)
        if token is None:
            token = self._tokens[canonical_ref] = pseudonymise(canonical_ref, self.key)
        return token

    def _user_parts(self, namespace: str | None, name: str) -> str:
        return self.user(parse_entity_ref({"kind": "user", "namespace": namespace or "default", "name": name}).canonical())

    def _email(self, address: str) -> str:
        address = unquote(address).strip().lower()
        ref = self.people.by_email.get(address)
        return self.user(ref) if ref else self.user(address)

    def entity_ref(self, canonical_ref: str | None) -> str | None:
        """A canonical entity ref, with a user's replaced by their token."""
        if canonical_ref is not None and canonical_ref.startswith("user:"):
            return self.user(canonical_ref)
        return canonical_ref

    # --- free text -----------------------------------------------------------------------------

    def text(self, value: str) -> str:
        """Any text with every recognised person in it replaced by their token."""
        out = self._texts.get(value)
        if out is None:
            if len(self._texts) >= 100_000:  # a long import: keep the cache bounded
                self._texts.clear()
            out = self._texts[value] = self._text(value)
        return out

    def _text(self, value: str) -> str:
        value = EMAIL.sub(lambda m: self._email(m.group(0)), value)
        value = USER_REF.sub(lambda m: self._user_parts(m.group(1), m.group(2)), value)
        if self.people.by_name or self.people.by_phrase:
            value = self._known_names(value)
        return value

    def _known_names(self, value: str) -> str:
        matches = list(_WORD.finditer(value))
        if not matches:
            return value
        words = [m.group(0).lower().rstrip(".'’-") for m in matches]
        spans: list[tuple[int, int, str]] = []
        i = 0
        while i < len(words):
            hit = None
            for n in range(min(MAX_NAME_WORDS, len(words) - i), 1, -1):
                ref = self.people.by_phrase.get(tuple(words[i : i + n]))
                if ref:
                    hit = (n, ref)
                    break
            if hit is None:
                ref = self.people.by_name.get(words[i]) or self.people.by_name.get(matches[i].group(0).lower())
                if ref and not is_token(words[i]):
                    hit = (1, ref)
            if hit is None:
                i += 1
                continue
            n, ref = hit
            last = matches[i + n - 1]
            start, end = matches[i].start(), last.start() + len(last.group(0).rstrip(".'’-"))
            spans.append((start, end, self.user(ref)))
            i += n
        for start, end, token in reversed(spans):
            value = value[:start] + token + value[end:]
        return value

    # --- an event's subject and route attributes ------------------------------------------------

    def subject_and_attributes_json(self, subject: str, attributes: Mapping[str, Any] | None) -> tuple[str, str | None]:
        """`subject_and_attributes` with the attributes as stored (JSON text), cached per distinct
        pair: a day repeats the same pages thousands of times."""
        import orjson

        raw_json = orjson.dumps(attributes).decode() if attributes else None
        cache_key = (subject, raw_json)
        out = self._events.get(cache_key)
        if out is None:
            if len(self._events) >= 100_000:
                self._events.clear()
            scrubbed, attrs = self.subject_and_attributes(subject, attributes)
            out = self._events[cache_key] = (scrubbed, orjson.dumps(attrs).decode() if attrs else None)
        return out

    def subject_and_attributes(self, subject: str, attributes: Mapping[str, Any] | None) -> tuple[str, dict[str, Any] | None]:
        """Scrub a subject (a path, a search term, a label) and its attributes consistently.

        A user entity route's name (from `kind: user` attributes or from a `…/<ns>/user/<name>`
        path) becomes the person's token in the path and in the attributes alike.
        """
        names: dict[str, str] = {}  # raw path segment → token
        attrs = dict(attributes) if attributes else None
        if attrs and str(attrs.get("kind", "")).lower() == "user" and isinstance(attrs.get("name"), str) and attrs["name"]:
            namespace = attrs.get("namespace") if isinstance(attrs.get("namespace"), str) else None
            try:
                token = self._user_parts(namespace, attrs["name"])
                names[attrs["name"]] = token
                attrs["name"] = token
            except EntityRefError:
                pass
        subject = self._user_route(subject, names)
        if attrs:
            attrs = {k: (self.text(v) if isinstance(v, str) else v) for k, v in attrs.items()}
        return self.text(subject), attrs

    def _user_route(self, subject: str, names: dict[str, str]) -> str:
        if "/" not in subject:
            return subject
        head, sep, tail = subject.partition("?")
        path, hash_sep, fragment = head.partition("#")
        segments = path.split("/")
        for i in range(1, len(segments)):
            raw = unquote(segments[i])
            if raw in names:
                segments[i] = names[raw]
            elif i + 1 < len(segments) and raw.lower() == "user" and segments[i - 1] and segments[i + 1]:
                try:
                    segments[i + 1] = self._user_parts(unquote(segments[i - 1]), unquote(segments[i + 1]))
                except EntityRefError:
                    pass
        return "/".join(segments) + hash_sep + fragment + sep + tail


# --- k: no figure about fewer than k people ---------------------------------------------------------
# Counts of people (active, new, returning users; cohort and plugin users) below k, zero included
# (as in the surveys: otherwise "hidden" next to a shown 0 would mean 1..k-1), are published as
# missing values, and figures that would give a hidden one back by difference are hidden with it.
# k is `UsageConfig.min_team_size` (default 5), the same minimum the team adoption uses.

DAILY_PEOPLE = ("dau", "wau", "mau", "new_users", "returning_users")
MIN_PEOPLE_FLOOR = 3  # as in the surveys: a smaller k cannot protect anyone


def shown_count(value: Any, k: int) -> int | None:
    """A count of people as it may be shown: the count when at least k, else None."""
    try:
        if value is None or value != value:  # None, NaN, pd.NA
            return None
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if number >= k else None


def _mask_below(frame: Any, column: str, k: int) -> Any:
    """Boolean mask of cells to hide: below k (zero included) or already missing."""
    values = frame[column]
    return values.isna() | (values.fillna(0) < k)


def _hidden(frame: Any, masks: dict[str, Any]) -> Any:
    """`frame` with each column's masked cells missing (counts as nullable integers)."""
    for column, mask in masks.items():
        values = frame[column]
        frame[column] = (values if column in ("retention", "stickiness") else values.astype("Int64")).mask(mask)
    return frame


def protect_people_figures(tables: dict[str, Any], k: int) -> dict[str, Any]:
    """The usage insight tables with every people count below k hidden (see above), in place of
    the input tables. Differencing is closed where a published sum or difference could give a
    hidden count back:

    - daily: `dau = new_users + returning_users`, so when one of the two is hidden so is the other;
      stickiness (DAU / MAU) is hidden with DAU or MAU;
    - weekly `new_users` is the sum of that week's daily `new_users`: it is shown only when the
      daily cells hidden in its week are none or together count k or more;
    - plugin adoption: `cumulative_users` differs from the previous shown one by the `new_users` in
      between: it is shown only when the hidden ones among those are none or count k or more;
    - cohorts: a cohort smaller than k shows nothing; a cell with fewer than k active shows no
      count and no retention;
    - team adoption: a team's active members and share are hidden when its active or its inactive
      members (members - active) are fewer than k (`adoption_hidden`).
    """
    import numpy as np
    import pandas as pd

    out = dict(tables)
    daily = tables.get("daily")
    hidden_new = None
    if daily is not None and len(daily):
        daily = daily.copy()
        masks = {c: _mask_below(daily, c, k) for c in DAILY_PEOPLE if c in daily.columns}
        if "new_users" in masks and "returning_users" in masks:
            either = masks["new_users"] | masks["returning_users"]
            masks["new_users"] = masks["returning_users"] = either
        true_new = daily["new_users"].astype("float64") if "new_users" in daily.columns else None
        if "stickiness" in daily.columns:
            masks["stickiness"] = masks.get("dau", False) | masks.get("mau", False)
        _hidden(daily, masks)
        if true_new is not None:
            hidden_new = pd.DataFrame({"day": daily["day"], "value": true_new, "hidden": masks["new_users"]})
        out["daily"] = daily
    weekly = tables.get("weekly")
    if weekly is not None and len(weekly):
        weekly = weekly.copy()
        hide_active = _mask_below(weekly, "active_users", k)
        hide_new = _mask_below(weekly, "new_users", k)
        if hidden_new is not None:
            week_of = pd.to_datetime(hidden_new["day"]).dt.to_period("W-SUN").dt.start_time.dt.date.astype(str)
            h = hidden_new.assign(week=week_of.to_numpy())
            h = h[h["hidden"]]
            cells = h.groupby("week")["value"].agg(["count", "sum"])
            leak = cells[(cells["count"] > 0) & (cells["sum"] < k)].index
            hide_new |= weekly["week"].astype(str).isin(leak).to_numpy()
        out["weekly"] = _hidden(weekly, {"active_users": hide_active, "new_users": hide_new})
    cohorts = tables.get("cohorts")
    if cohorts is not None and len(cohorts):
        cohorts = cohorts.copy()
        small_cohort = _mask_below(cohorts, "cohort_users", k)
        small_cell = small_cohort | _mask_below(cohorts, "active_users", k)
        out["cohorts"] = _hidden(cohorts, {"cohort_users": small_cohort, "active_users": small_cell, "retention": small_cell})
    plugins = tables.get("plugin_adoption")
    if plugins is not None and len(plugins):
        plugins = plugins.sort_values(["plugin", "week"], kind="stable").reset_index(drop=True)
        hide_active = _mask_below(plugins, "active_users", k).to_numpy()
        hide_new = _mask_below(plugins, "new_users", k).to_numpy()
        new = plugins["new_users"].to_numpy(dtype="float64")
        cumulative = plugins["cumulative_users"].to_numpy(dtype="float64")
        names = plugins["plugin"].to_numpy()
        hide_cum = np.zeros(len(plugins), dtype=bool)
        hidden_sum, hidden_cells = 0.0, 0
        for i in range(len(plugins)):
            if i == 0 or names[i] != names[i - 1]:
                hidden_sum, hidden_cells = 0.0, 0
            if hide_new[i]:
                hidden_sum += new[i]
                hidden_cells += 1
            if cumulative[i] < k or (hidden_cells and hidden_sum < k):
                hide_cum[i] = True
            else:
                hidden_sum, hidden_cells = 0.0, 0
        out["plugin_adoption"] = _hidden(plugins, {"active_users": hide_active, "new_users": hide_new, "cumulative_users": hide_cum})
    adoption = tables.get("adoption")
    if adoption is not None and len(adoption):
        adoption = adoption.copy()
        hide = adoption_hidden(adoption["members"], adoption["active_members"], k) | adoption["suppressed"].fillna(False).astype(bool)
        adoption["suppressed"] = hide
        adoption["active_members"] = adoption["active_members"].astype("Int64").mask(hide)
        adoption["share"] = adoption["share"].astype("float64").mask(hide)
        out["adoption"] = adoption
    meta = tables.get("meta")
    if meta is not None and len(meta):
        meta = meta.copy()
        _hidden(meta, {c: _mask_below(meta, c, k) for c in ("active_catalog_users", "active_unknown_users") if c in meta.columns})
        meta["min_people"] = k
        out["meta"] = meta
    return out


def people_figure_violations(tables: dict[str, Any], k: int) -> list[str]:
    """Shown people counts below k in the usage tables (empty when none): what every door that
    shows usage figures re-verifies."""
    problems = []
    adoption = tables.get("adoption")
    if adoption is not None and len(adoption) and {"members", "active_members"} <= set(adoption.columns):
        shown = adoption[adoption["active_members"].notna()]
        bad = adoption_hidden(shown["members"], shown["active_members"], k)
        problems += [f"adoption.active_members = {a} of {m} members (active or inactive < {k})"
                     for a, m in zip(shown.loc[bad, "active_members"].head(5), shown.loc[bad, "members"].head(5))]
    columns = {"daily": DAILY_PEOPLE, "weekly": ("active_users", "new_users"), "cohorts": ("cohort_users", "active_users"),
               "plugin_adoption": ("active_users", "new_users", "cumulative_users"), "meta": ("active_catalog_users", "active_unknown_users")}
    for name, cols in columns.items():
        frame = tables.get(name)
        if frame is None or not len(frame):
            continue
        for column in cols:
            if column in frame.columns:
                values = frame[column]
                bad = values.notna() & (values.fillna(k) < k)
                problems += [f"{name}.{column} = {v} (< {k})" for v in values[bad].head(5)]
    return problems


def adoption_hidden(members: Any, active: Any, k: int) -> Any:
    """Team adoption cells to suppress: a group of fewer than k members, or one whose active or
    inactive members (members - active: the member count is published) number fewer than k, zero
    included ("1 of 12 active" names one person's activity, and so does "11 of 12")."""
    members = members.fillna(0)
    active = active.fillna(0)
    return (members < k) | (active < k) | ((members - active) < k)


def published_windows(meta: Mapping[str, Any]) -> tuple[int, ...]:
    """The windows (in days) for which distinct-user figures are published: the configured WAU,
    MAU and retention windows, and the whole of the data when it covers less. Any other window
    would let two nearby windows be subtracted (28 days - 27 days = the people last active on one
    day), so `usage summary --days` offers only these."""
    configured = {int(meta[c]) for c in ("wau_days", "mau_days", "retention_days") if meta.get(c) == meta.get(c) and meta.get(c)}
    covered = int(meta.get("days") or 0)
    return tuple(sorted({w for w in configured if w <= covered} | ({covered} if covered else set())))


def difference_safe(counts: Mapping[int, Any], k: int) -> dict[int, Any]:
    """Distinct-user counts per key for nested windows (window days -> pandas Series by key), with
    every count hidden (NaN) that is below k, or that differs by fewer than k (zero included) from
    the shown count of a smaller window of the same key: the difference would be the number of
    people whose last activity fell between the two windows' starts. Smaller windows are decided
    first, so what is shown does not depend on which window was asked for."""
    shown: dict[int, Any] = {}
    for window in sorted(counts):
        values = counts[window].astype("float64")
        hide = values.isna() | (values < k)
        for smaller, previous in shown.items():
            before = previous.reindex(values.index)
            hide |= before.notna() & ((values - before) < k)
        shown[window] = values.mask(hide)
    return {w: shown[w] for w in counts} if shown else {}
