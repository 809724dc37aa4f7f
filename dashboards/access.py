"""What one audience may see on the site, decided once per permission from the RBAC policy.

`Access.unrestricted()` is the operator's full site. `Access.for_audience(policy, org, ref)` answers
per permission with a level:

- `all`: the policy allows it outright: organisation-wide figures and every team;
- `some`: the policy allows it under conditions (e.g. only groups the person belongs to or owns):
  pages show the rows whose resource passes the conditions, and no organisation-wide figure
  (an org total includes the teams the audience may not see);
- `none`: denied; the page or section is left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from analytics.rbac import ALLOW, CONDITIONAL, ENTITY, GROUP, PROVIDER, Decision, Policy, Subject

if TYPE_CHECKING:
    from analytics.org import OrgGraph

ALL, SOME, NONE = "all", "some", "none"


class Access:
    def __init__(self, policy: Policy | None = None, subject: Subject | None = None, org: OrgGraph | None = None):
        self.policy = policy
        self.subject = subject
        self.org = org
        self._decisions: dict[str, Decision] = {}

    @classmethod
    def unrestricted(cls) -> Access:
        return cls()

    @classmethod
    def for_audience(cls, policy: Policy, org: OrgGraph, actor: str) -> Access:
        return cls(policy, Subject.resolve(actor, org), org)

    @property
    def restricted(self) -> bool:
        return self.policy is not None

    @property
    def audience(self) -> str | None:
        return self.subject.ref if self.subject else None

    def decision(self, permission: str) -> Decision | None:
        if self.policy is None or self.subject is None:
            return None
        if permission not in self._decisions:
            self._decisions[permission] = self.policy.decide(self.subject, permission)
        return self._decisions[permission]

    def level(self, permission: str) -> str:
        decision = self.decision(permission)
        if decision is None or decision.result == ALLOW:
            return ALL
        return SOME if decision.result == CONDITIONAL else NONE

    def all(self, permission: str) -> bool:
        return self.level(permission) == ALL

    # ----------------------------------------------------------------------- per resource

    def group_mask(self, permission: str, refs: pd.Series) -> np.ndarray:
        decision = self.decision(permission)
        if decision is None:
            return np.ones(len(refs), dtype=bool)
        return decision.mask(pd.DataFrame({"ref": refs.to_numpy()}), GROUP)

    def groups(self, permission: str, refs: Iterable[str]) -> set[str]:
        refs = pd.Series(sorted(set(refs)), dtype=object)
        return set(refs[self.group_mask(permission, refs)])

    def group_allowed(self, permission: str, ref: str) -> bool:
        return bool(self.group_mask(permission, pd.Series([ref], dtype=object))[0])

    def entity_mask(self, permission: str, frame: pd.DataFrame) -> np.ndarray:
        """Rows of `frame` (columns ref, and kind / owner where the conditions need them) allowed."""
        decision = self.decision(permission)
        if decision is None:
            return np.ones(len(frame), dtype=bool)
        return decision.mask(frame, ENTITY)

    def providers(self, permission: str, names: Iterable[str]) -> set[str]:
        names = sorted(set(names))
        decision = self.decision(permission)
        if decision is None:
            return set(names)
        frame = pd.DataFrame({"ref": [f"{PROVIDER}:{n}".lower() for n in names]})
        return {n for n, ok in zip(names, decision.mask(frame, PROVIDER)) if ok}

    @cached_property
    def all_groups(self) -> set[str]:
        return self.org.all_groups() if self.org is not None else set()
