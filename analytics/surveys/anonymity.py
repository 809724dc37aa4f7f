"""Which survey figures may be shown: a k-threshold plus complementary suppression on the org tree.

A figure about fewer than k respondents is never shown (primary suppression). That is not enough
on a hierarchy: a parent's figure is the respondent-weighted combination of its direct members'
answers and its children's, so if a parent and all but one of its children are shown, the hidden
child can be computed by subtraction (Quantum Workplace's warning about differencing). So some
cells that pass the threshold are hidden too (complementary suppression).

The model. For every group P with children there is one additive relation over the cells
`P = own(P) + child_1 + ... + child_m`, where `own(P)` (P's direct members) is never published.
A cell is *present* when anybody in it was invited (or answered): the attacker knows the org
chart and the invitations, so only a cell with nobody invited is known to be empty. A present cell
with zero respondents is treated like any count below k (hidden, and it needs cover): showing
"0 of 2 invited" in one wave would make a later "hidden" for the same group mean 1 to k-1. With the
hidden cells as unknowns, the relations form a tree-shaped linear system in which each hidden cell
appears in at most two relations. Such a system determines a hidden cell exactly when

1. some relation has exactly one hidden non-empty cell (it is the difference of the others), or
2. a connected set of relations joined by hidden groups, whose top group is shown, has all its
   "pendant" cells (hidden cells that appear in one relation only: own cells and hidden leaf
   groups) summing to fewer than k respondents: their union is a derivable group below k.

If no relation has exactly one hidden non-empty cell, every connected component has at least two
pendants and every hidden group has pendants on both sides, so no single cell is determined; the
only pendant-only combination that is determined is the sum of a component's pendants, which
rule 2 keeps at k or more. `suppress()` hides cells until neither rule fires; `find_disclosures()`
checks any pattern against both rules (every published layer is checked before it is written). The
tests check the rules themselves independently, by linear algebra over the published figures.

The heuristic hides the cheapest cell that fixes a violation: the child with the fewest
respondents (leaf groups first, since hiding a group with children can cascade into its own
relation), and the parent only when no child can be hidden.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from analytics.org import OrgGraph


@dataclass
class Hierarchy:
    """The org's groups as a forest of array indices (cycles in `parent` links broken)."""

    refs: list[str]
    index: dict[str, int]
    parent: np.ndarray  # int64, -1 for roots
    depth: np.ndarray
    org: OrgGraph  # the org with the cycle-free parent map (what rollup_frame() rolls up along)

    @classmethod
    def from_org(cls, org: OrgGraph) -> "Hierarchy":
        parent = dict(org.parent)
        # A parent cycle would make a group its own ancestor and break the additive relations the
        # anonymity rules rely on; drop the link out of the smallest ref on each cycle.
        for start in sorted(parent):
            path: list[str] = []
            seen: set[str] = set()
            node: str | None = start
            while node is not None and node in parent and node not in seen:
                seen.add(node)
                path.append(node)
                node = parent.get(node)
            if node is not None and node in seen:
                cycle = path[path.index(node):]
                parent.pop(min(cycle), None)
        clean = OrgGraph(groups=org.groups, parent=parent, direct_members=org.direct_members, users=org.users)
        groups = sorted(clean.all_groups())
        depth_of = {g: len(clean.ancestors(g)) for g in groups}
        refs = sorted(groups, key=lambda g: (depth_of[g], g))
        index = {g: i for i, g in enumerate(refs)}
        parents = np.array([index[parent[g]] if g in parent else -1 for g in refs], dtype=np.int64)
        depths = np.array([depth_of[g] for g in refs], dtype=np.int64)
        return cls(refs, index, parents, depths, clean)

    @property
    def topological(self) -> range:
        """Node indices, parents before children (nodes are sorted by depth)."""
        return range(len(self.refs))

    @cached_property
    def roots(self) -> np.ndarray:
        return np.flatnonzero(self.parent < 0)

    @cached_property
    def children(self) -> list[list[int]]:
        kids: list[list[int]] = [[] for _ in self.refs]
        for child, par in enumerate(self.parent):
            if par >= 0:
                kids[par].append(child)
        return kids

    @cached_property
    def has_children(self) -> np.ndarray:
        return np.array([bool(c) for c in self.children], dtype=bool)

    def rollup_matrix(self):  # noqa: ANN201 - scipy.sparse.csr_matrix
        """R[g, a] = 1 when a is g or one of its ancestors, from `OrgGraph.rollup_frame()`.

        `per_team @ R` rolls per-team sums up to every group.
        """
        from scipy import sparse

        frame = self.org.rollup_frame()
        rows = frame["group_ref"].map(self.index).to_numpy(dtype=np.int64)
        cols = frame["rollup_ref"].map(self.index).to_numpy(dtype=np.int64)
        n = len(self.refs)
        return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))

    def own_counts(self, n: np.ndarray) -> np.ndarray:
        """Respondents who are direct members of each group (n minus its children's n)."""
        nonroot = self.parent >= 0
        child_sum = np.bincount(self.parent[nonroot], weights=n[nonroot], minlength=len(self.refs))
        return n - child_sum


@dataclass
class Cells:
    """One table layer's counts on the hierarchy: respondents per group (rolled up), which groups
    and which direct-member cells are present (somebody invited or answering), and the own counts."""

    n: np.ndarray
    present: np.ndarray
    own: np.ndarray
    own_present: np.ndarray

    @classmethod
    def of(cls, hier: Hierarchy, n: np.ndarray, invited: np.ndarray | None = None) -> "Cells":
        n = np.asarray(n, dtype=np.float64)
        own = hier.own_counts(n)
        if (own < -1e-9).any():
            raise ValueError("group counts are not consistent with the hierarchy (a parent has fewer respondents than its children)")
        if invited is None:
            return cls(n, n > 0, own, own > 0)
        invited = np.asarray(invited, dtype=np.float64)
        return cls(n, (n > 0) | (invited > 0), own, (own > 0) | (hier.own_counts(invited) > 0))


def suppress(hier: Hierarchy, n: np.ndarray, k: int, invited: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the groups to hide, given respondents per group (already rolled up).

    `invited` (rolled up like `n`) makes a group with invitations but no respondent present: it is
    hidden like any count below k. Without it, only groups with respondents are present.
    """
    cells = Cells.of(hier, n, invited)
    n, present = cells.n, cells.present
    hidden = present & (n < k)
    kids = hier.children
    for _ in range(4 * len(hier.refs) + 10):
        violations = np.flatnonzero(_hidden_cells_per_relation(hier, cells, hidden) == 1)
        if violations.size:
            # Deepest first: fixing a low relation may hide a group that also fixes the one above.
            for p in sorted(violations, key=lambda i: -hier.depth[i]):
                count = int(hidden[p] and present[p]) + int(cells.own_present[p]) + sum(1 for c in kids[p] if hidden[c] and present[c])
                if count == 1:
                    _hide_cheapest(hier, cells, hidden, kids[p], p)
            continue
        short = _short_components(hier, cells, hidden, k)
        if not short:
            return hidden
        for members, top in short:
            _hide_cheapest(hier, cells, hidden, [c for p in members for c in kids[p]], top)
    raise RuntimeError("complementary suppression did not converge")  # pragma: no cover - bounded by N


def _hidden_cells_per_relation(hier: Hierarchy, cells: Cells, hidden: np.ndarray) -> np.ndarray:
    """For each group with children: its hidden present cells (itself, its direct members, its
    children); 0 for groups without children."""
    nonroot = hier.parent >= 0
    hnz = hidden & cells.present
    count = np.bincount(hier.parent[nonroot], weights=hnz[nonroot], minlength=len(hier.refs))
    return np.where(hier.has_children, count + cells.own_present + hnz, 0)


def _hide_cheapest(hier: Hierarchy, cells: Cells, hidden: np.ndarray, candidates: list[int], parent: int) -> None:
    n = cells.n
    options = [c for c in candidates if not hidden[c] and cells.present[c]]
    if options:
        best = min(options, key=lambda c: (n[c], bool(hier.has_children[c]), c))
        hidden[best] = True
    elif not hidden[parent] and cells.present[parent]:
        hidden[parent] = True


def _components(hier: Hierarchy, cells: Cells, hidden: np.ndarray):  # noqa: ANN202
    """Relations holding a hidden present cell, grouped by connectivity through hidden groups.

    Returns (involved relation indices, component label of each, pendant respondents of each):
    a hidden group with children sits in its own relation and in its parent's, and links them;
    own cells and hidden groups without children are pendants of the one relation they are in.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    size = len(hier.refs)
    n, own = cells.n, cells.own
    hnz = hidden & cells.present
    involved = np.flatnonzero(_hidden_cells_per_relation(hier, cells, hidden) > 0)
    links = np.flatnonzero(hnz & hier.has_children & (hier.parent >= 0))
    graph = coo_matrix((np.ones(len(links)), (links, hier.parent[links])), shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    nonroot = hier.parent >= 0
    leaf_pendants = np.bincount(hier.parent[nonroot], weights=(n * (hnz & ~hier.has_children))[nonroot], minlength=size)
    pendants = np.where(hier.has_children, np.maximum(own, 0) + leaf_pendants, 0.0)
    return involved, labels[involved], pendants[involved]


def _short_components(hier: Hierarchy, cells: Cells, hidden: np.ndarray, k: int) -> list[tuple[list[int], int]]:
    """Components under a shown group whose pendants add up to fewer than k respondents (zero
    included: an empty derivable group is as telling as a small one): (relations, top)."""
    involved, labels, pendants = _components(hier, cells, hidden)
    if not len(involved):
        return []
    totals = np.bincount(labels, weights=pendants)
    order = np.lexsort((involved, hier.depth[involved], labels))  # per component, its top first
    first = order[np.r_[True, labels[order][1:] != labels[order][:-1]]]
    out = []
    for i in first:
        top, label = involved[i], labels[i]
        if totals[label] < k and not (hidden[top] and cells.present[top]):
            out.append((list(involved[labels == label]), int(top)))
    return out


def find_disclosures(hier: Hierarchy, n: np.ndarray, hidden: np.ndarray, k: int, invited: np.ndarray | None = None) -> list[str]:
    """Why a suppression pattern leaks, one message per problem; empty when it is safe."""
    cells = Cells.of(hier, n, invited)
    n, own, present = cells.n, cells.own, cells.present
    problems = [f"{hier.refs[i]} is shown with {int(n[i])} respondents (< {k})" for i in np.flatnonzero(~hidden & present & (n < k))]
    for p in np.flatnonzero(_hidden_cells_per_relation(hier, cells, hidden) == 1):
        ref = hier.refs[p]
        found = [ref] if hidden[p] and present[p] else []
        found += [f"direct members of {ref}"] if cells.own_present[p] else []
        found += [hier.refs[c] for c in hier.children[p] if hidden[c] and present[c]]
        problems.append(f"{found[0]} can be computed from {ref} and its other children")
    for members, top in _short_components(hier, cells, hidden, k):
        total = own[members].clip(min=0).sum() + sum(n[c] for p in members for c in hier.children[p] if hidden[c] and present[c] and not hier.has_children[c])
        problems.append(f"the hidden cells under {hier.refs[top]} add up to a derivable group of {int(total)} (< {k})")
    return problems
