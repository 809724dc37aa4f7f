"""The catalog as a graph: who owns what, and what needs what.

Backstage stores every relation twice (`dependsOn` / `dependencyOf`, `ownedBy` / `ownerOf`, ...).
`normalise_relations` keeps one direction of each pair, and `dependency_edges` turns the relations
into one edge type, "source needs target", so that two questions become plain graph traversals:

- what X needs: everything reachable from X (`DependencyGraph.traverse(x)`);
- what breaks if X goes down: everything that reaches X (`traverse(x, reverse=True)`).

Which relations count as "needs" (the one modelling decision here; documented in
docs/catalog_health.md):

| relation                          | edge                  | why |
| --------------------------------- | --------------------- | --- |
| A `dependsOn` B                   | A needs B             | as declared |
| A `consumesApi` B                 | A needs API B         | a consumer breaks when the API does |
| C `providesApi` B                 | API B needs C         | an API is down when its provider is |
| S `partOf` component P (subcomponentOf) | P needs S       | a component is down when a part of it is |

`partOf` a System or Domain is structure, not a dependency: it gives each node its system (a
subcomponent without a system inherits its parent's) and drives the per-system subgraphs.

The graph library is `scipy.sparse.csgraph`: strongly connected components, breadth-first
reachability and shortest paths run in C on a sparse adjacency matrix over integer-coded refs
(`CodedRelations`), which is what makes the 200,000-entity catalog (2.1 million relation rows, a
long tail of hubs, one giant cycle) take seconds rather than the minutes of pure-Python graph
libraries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from catalog_pipelines.model.refs import EntityRefError, parse_entity_ref

if TYPE_CHECKING:
    from analytics.org import OrgGraph

# Backstage's relation pairs, keyed by the lower-cased name of the direction we drop.
_REVERSE_TO_FORWARD = {
    "ownerof": "ownedBy",
    "apiprovidedby": "providesApi",
    "apiconsumedby": "consumesApi",
    "dependencyof": "dependsOn",
    "parentof": "childOf",
    "hasmember": "memberOf",
    "haspart": "partOf",
}
_FORWARD = {t.lower(): t for t in _REVERSE_TO_FORWARD.values()}

# `via` labels of dependency edges, in the order that wins when two relations give the same edge.
VIA_ORDER = ("dependsOn", "consumesApi", "providedBy", "hasSubcomponent")

# ---------------------------------------------------------------------------------------------
# Frames
# ---------------------------------------------------------------------------------------------


def kind_of(refs: pd.Series) -> pd.Series:
    """Kind part of canonical refs (`component:default/x` → `component`)."""
    # A regex replace runs in Arrow's C kernels; `.str.split().str[0]` goes through Python objects.
    return refs.str.replace(r":.*$", "", regex=True)


def zip_columns(*columns: Any) -> Any:
    """`zip` over columns as plain Python objects (missing values as None).

    Iterating an Arrow-backed Series directly costs about 1.5 µs a value: seconds over the
    200,000-entity catalog, where converting the column first costs milliseconds.
    """
    return zip(*(c.to_numpy(dtype=object, na_value=None) if isinstance(c, pd.Series) else c for c in columns))


def isin(values: pd.Series, lookup: Any) -> pd.Series:
    """`values.isin(lookup)` through Arrow's hash kernel.

    pandas' `isin` on Arrow strings builds one Arrow scalar per lookup value in Python, which costs
    seconds when the lookup is every ref of a 200,000-entity catalog; `pyarrow.compute.is_in` is
    ten times faster. Missing values are never "in".
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    keys = [v for v in lookup if isinstance(v, str)]
    if not keys or len(values) == 0:
        return pd.Series(False, index=values.index)
    data = pa.array(values.to_numpy(dtype=object, na_value=None), type=pa.string()) if values.dtype == object else pa.array(values)
    found = pc.is_in(data, value_set=pa.array(keys, type=data.type)).fill_null(False)
    return pd.Series(found.to_numpy(zero_copy_only=False), index=values.index)


@dataclass
class CodedRelations:
    """Relations in their forward direction, deduplicated, with refs as integer codes.

    Every whole-catalog step (dedupe, edge selection, existence checks, the sparse graph) works on
    these integers; strings are only looked up for the rows that end up in a result. On the
    200,000-entity catalog (2.1 million relation rows) that is the difference between seconds and
    tens of seconds.
    """

    refs: np.ndarray  # object array of canonical refs; position = code
    index: pd.Index  # the same refs, for looking codes up
    source: np.ndarray  # int64 codes
    target: np.ndarray
    type_code: np.ndarray  # int64 codes into type_names
    type_names: list[str]

    @classmethod
    def encode(cls, relations: pd.DataFrame, extra: pd.Series | None = None) -> CodedRelations:
        extra = pd.Series([], dtype=object) if extra is None else extra
        rel = relations if len(relations) else pd.DataFrame(columns=["source", "type", "target"], dtype=object)
        both = pd.concat([pd.Series(extra, dtype=object).astype(str), rel["source"].astype(str), rel["target"].astype(str)], ignore_index=True)
        codes, uniques = pd.factorize(both)
        # Refs compare case-insensitively: fold case on the (few) distinct values, then merge.
        folded, refs = pd.factorize(pd.Series(np.asarray(uniques, dtype=object)).str.lower())
        codes = folded[codes] if len(codes) else codes.astype(np.int64)
        n_extra, n_rel = len(extra), len(rel)
        src = codes[n_extra : n_extra + n_rel].astype(np.int64)
        tgt = codes[n_extra + n_rel :].astype(np.int64)
        tcodes, tnames = pd.factorize(rel["type"].astype(str))
        names: list[str] = []
        forward_code = np.zeros(len(tnames), dtype=np.int64)
        reverse = np.zeros(len(tnames), dtype=bool)
        for i, name in enumerate(tnames):
            low = str(name).lower()
            reverse[i] = low in _REVERSE_TO_FORWARD
            fwd = _REVERSE_TO_FORWARD.get(low) or _FORWARD.get(low) or str(name)
            if fwd not in names:
                names.append(fwd)
            forward_code[i] = names.index(fwd)
        rev = reverse[tcodes] if len(tcodes) else np.zeros(0, dtype=bool)
        fsrc, ftgt = np.where(rev, tgt, src), np.where(rev, src, tgt)
        ftype = forward_code[tcodes] if len(tcodes) else np.zeros(0, dtype=np.int64)
        n, t = max(len(refs), 1), max(len(names), 1)
        _, keep = np.unique((fsrc * n + ftgt) * t + ftype, return_index=True)
        refs_array = np.asarray(refs, dtype=object)
        return cls(
            refs=refs_array,
            index=pd.Index(refs_array),
            source=fsrc[keep],
            target=ftgt[keep],
            type_code=ftype[keep],
            type_names=names,
        )

    def __len__(self) -> int:
        return len(self.source)

    def of_type(self, name: str) -> np.ndarray:
        """Boolean mask of the rows of one forward relation type."""
        if name not in self.type_names:
            return np.zeros(len(self.source), dtype=bool)
        return self.type_code == self.type_names.index(name)

    def kind_mask(self, kind: str) -> np.ndarray:
        """Per code: is the ref of this kind?"""
        return pd.Series(self.refs, dtype="str").str.startswith(f"{kind}:").to_numpy(dtype=bool)

    def frame(self, mask: np.ndarray | None = None) -> pd.DataFrame:
        sel = slice(None) if mask is None else mask
        return pd.DataFrame(
            {
                "source": self.refs[self.source[sel]],
                "type": np.asarray(self.type_names, dtype=object)[self.type_code[sel]] if self.type_names else np.zeros(0, dtype=object),
                "target": self.refs[self.target[sel]],
            }
        )

    def subcomponent_of(self) -> tuple[np.ndarray, np.ndarray]:
        """(child, parent) codes of `partOf` rows between two components (subcomponentOf)."""
        component = self.kind_mask("component")
        rows = self.of_type("partOf") & component[self.source] & component[self.target] if len(self.refs) else self.of_type("partOf")
        return self.source[rows], self.target[rows]

    def dependency_edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(needer, needed, via code) of the "needs" edges, one per pair (see module doc)."""
        parts = [
            (self.source[self.of_type("dependsOn")], self.target[self.of_type("dependsOn")], 0),
            (self.source[self.of_type("consumesApi")], self.target[self.of_type("consumesApi")], 1),
            (self.target[self.of_type("providesApi")], self.source[self.of_type("providesApi")], 2),
        ]
        child, parent = self.subcomponent_of()
        parts.append((parent, child, 3))
        src = np.concatenate([p[0] for p in parts]).astype(np.int64)
        tgt = np.concatenate([p[1] for p in parts]).astype(np.int64)
        via = np.concatenate([np.full(len(p[0]), p[2], dtype=np.int64) for p in parts])
        # One edge per pair; where two relations give the same pair, the first in VIA_ORDER wins.
        key = src * max(len(self.refs), 1) + tgt
        order = np.lexsort((via, key))
        key, src, tgt, via = key[order], src[order], tgt[order], via[order]
        first = np.ones(len(key), dtype=bool)
        first[1:] = key[1:] != key[:-1]
        return src[first], tgt[first], via[first]


def normalise_relations(relations: pd.DataFrame) -> pd.DataFrame:
    """One row per relation in its forward direction (`ownedBy`, `dependsOn`, `partOf`, ...).

    Refs are lower-cased; a relation seen in both directions, or twice, is kept once. Types that are
    not one of Backstage's pairs are kept as they are.
    """
    return CodedRelations.encode(relations).frame()


def dependency_edges(relations: pd.DataFrame) -> pd.DataFrame:
    """"Source needs target" edges, `[source, target, via]`, one row per pair (see module doc)."""
    coded = CodedRelations.encode(relations)
    src, tgt, via = coded.dependency_edges()
    return pd.DataFrame(
        {"source": coded.refs[src], "target": coded.refs[tgt], "via": np.asarray(VIA_ORDER, dtype=object)[via]}
    )


def resolve_refs(values: pd.Series, namespaces: pd.Series, default_kind: str) -> pd.Series:
    """Canonical refs for ref-valued fields (owner, system) read in their entity's namespace.

    Parsed once per distinct (value, namespace) pair, so 200,000 entities with a few thousand
    owners cost a few thousand parses. Unparseable or empty values become None.
    """
    keys = pd.DataFrame({"v": values, "ns": namespaces.fillna("default")})
    present = keys["v"].notna() & (keys["v"].astype(str).str.len() > 0)
    out = pd.Series([None] * len(keys), index=values.index, dtype=object)
    if not present.any():
        return out
    uniq = keys[present].drop_duplicates()
    resolved = {}
    for v, ns in zip_columns(uniq["v"], uniq["ns"]):
        try:
            resolved[(v, ns)] = parse_entity_ref(v, default_kind=default_kind, default_namespace=ns).canonical()
        except (EntityRefError, TypeError, AttributeError):
            resolved[(v, ns)] = None
    sub = keys[present]
    out[present] = [resolved[(v, ns)] for v, ns in zip_columns(sub["v"], sub["ns"])]
    return out


def entity_index(entities: pd.DataFrame, relations: pd.DataFrame | CodedRelations | None = None) -> pd.DataFrame:
    """Entities with canonical `owner` and effective `system` refs, one row each.

    `owner_raw` keeps what the entity says. A component without a system inherits the system of the
    component it is a subcomponent of (transitively), because that is where an engineer would look.
    """
    ents = entities.copy()
    if "ref" not in ents:
        raise ValueError("entities frame needs a 'ref' column")
    ents["ref"] = ents["ref"].astype(str).str.lower()
    for col in ("kind", "namespace", "name", "owner", "system", "lifecycle", "provider", "type"):
        if col not in ents:
            ents[col] = None
    ents["kind"] = ents["kind"].astype(str).str.lower()
    ents["owner_raw"] = ents["owner"]
    ents["owner"] = resolve_refs(ents["owner"], ents["namespace"], "group")
    ents["system"] = resolve_refs(ents["system"], ents["namespace"], "system")
    ents = ents.drop_duplicates("ref", keep="last").reset_index(drop=True)
    if relations is not None and len(relations):
        coded = relations if isinstance(relations, CodedRelations) else CodedRelations.encode(relations)
        child, parent = coded.subcomponent_of()
        if len(child):
            parent_of = dict(zip(coded.refs[child], coded.refs[parent]))
            system_of = dict(zip_columns(ents["ref"], ents["system"]))
            # Walk up subcomponent chains; bounded so that a (broken) cyclic chain cannot loop.
            for _ in range(16):
                missing = ents["system"].isna() & isin(ents["ref"], parent_of.keys())
                if not missing.any():
                    break
                inherited = ents.loc[missing, "ref"].map(parent_of).map(system_of)
                if inherited.isna().all():
                    break
                ents.loc[missing, "system"] = inherited
                system_of.update(zip_columns(ents.loc[missing, "ref"], ents.loc[missing, "system"]))
    return ents


def _outside_nodes(refs: np.ndarray) -> pd.DataFrame:
    """Node rows for refs that are not in the catalog, with kind/namespace/name from the ref."""
    ref = pd.Series(refs, dtype=object)
    parts = ref.str.extract(r"^(?P<kind>[^:]*):(?P<namespace>[^/]*)/(?P<name>.*)$")
    return pd.DataFrame(
        {
            "ref": ref,
            "kind": parts["kind"],
            "namespace": parts["namespace"],
            "name": parts["name"],
            "owner": None,
            "system": None,
            "lifecycle": None,
            "in_catalog": False,
        }
    )


# ---------------------------------------------------------------------------------------------
# The graph
# ---------------------------------------------------------------------------------------------


@dataclass
class DependencyGraph:
    """A sparse adjacency matrix over refs: `needs[i, j]` is set when node i needs node j."""

    refs: np.ndarray
    codes: pd.Index
    needs: Any  # scipy.sparse.csr_array
    needed_by: Any  # transpose, also CSR, for reverse traversals
    edge_keys: np.ndarray  # sorted source*n+target, to look up the `via` of an edge
    edge_via: np.ndarray

    @classmethod
    def from_edges(cls, edges: pd.DataFrame, nodes: Iterable[str] = ()) -> DependencyGraph:
        """From an edge frame `[source, target, via]` (e.g. the stored table) and extra nodes."""
        both = pd.concat([pd.Series(list(nodes), dtype=object), edges["source"].astype(object), edges["target"].astype(object)], ignore_index=True)
        codes, uniques = pd.factorize(both)
        n_nodes, n_edges = len(both) - 2 * len(edges), len(edges)
        via_names, via_codes = pd.Index(VIA_ORDER), None
        via_codes = np.maximum(via_names.get_indexer(edges["via"].astype(object)), 0)
        return cls.from_codes(
            np.asarray(uniques, dtype=object),
            codes[n_nodes : n_nodes + n_edges].astype(np.int64),
            codes[n_nodes + n_edges :].astype(np.int64),
            via_codes.astype(np.int64),
        )

    @classmethod
    def from_stored(cls, nodes: pd.DataFrame, edge_ids: pd.DataFrame) -> DependencyGraph:
        """From the stored tables: `nodes` (node_id, ref, …) and edges by node id."""
        refs = np.empty(len(nodes), dtype=object)
        refs[nodes["node_id"].to_numpy(dtype=np.int64)] = nodes["ref"].to_numpy(dtype=object)
        via = np.maximum(pd.Index(VIA_ORDER).get_indexer(edge_ids["via"].astype(object)), 0)
        return cls.from_codes(
            refs,
            edge_ids["source_id"].to_numpy(dtype=np.int64),
            edge_ids["target_id"].to_numpy(dtype=np.int64),
            via.astype(np.int64),
        )

    @classmethod
    def from_codes(cls, refs: np.ndarray, src: np.ndarray, tgt: np.ndarray, via: np.ndarray) -> DependencyGraph:
        """From integer edge lists over `refs` (position = code); edges must be unique pairs."""
        from scipy import sparse

        n = len(refs)
        # float64 is what scipy.sparse.csgraph works on; any other dtype is copied on every call.
        needs = sparse.csr_array((np.ones(len(src), dtype=np.float64), (src, tgt)), shape=(n, n))
        needs.sum_duplicates()
        keys = src.astype(np.int64) * max(n, 1) + tgt
        order = np.argsort(keys, kind="stable")
        return cls(
            refs=np.asarray(refs, dtype=object),
            codes=pd.Index(refs),
            needs=needs,
            needed_by=needs.T.tocsr(),
            edge_keys=keys[order],
            edge_via=via[order],
        )

    def __len__(self) -> int:
        return len(self.refs)

    def code(self, ref: str) -> int:
        loc = self.codes.get_indexer([ref.lower()])[0]
        if loc < 0:
            raise KeyError(ref)
        return int(loc)

    def __contains__(self, ref: str) -> bool:
        return self.codes.get_indexer([ref.lower()])[0] >= 0

    def _via(self, needer: np.ndarray, needed: np.ndarray) -> np.ndarray:
        keys = needer.astype("int64") * max(len(self), 1) + needed
        pos = np.searchsorted(self.edge_keys, keys)
        pos = np.clip(pos, 0, max(len(self.edge_keys) - 1, 0))
        codes = self.edge_via[pos] if len(self.edge_via) else np.zeros(len(keys), dtype="int64")
        return np.asarray(VIA_ORDER, dtype=object)[codes]

    def traverse(self, ref: str, *, reverse: bool = False, depth: int | None = None) -> pd.DataFrame:
        """Everything `ref` needs (or, with `reverse`, everything that needs `ref`), transitively.

        Columns: `ref`, `depth` (shortest number of hops), `parent` (the node it was reached
        through) and `via` (the relation on that hop). `depth=None` means no limit.
        """
        from scipy.sparse.csgraph import dijkstra

        start = self.code(ref)
        matrix = self.needed_by if reverse else self.needs
        # Unweighted Dijkstra is a breadth-first search in C that also returns hop counts and the
        # shortest-path tree, and `limit` stops it at the requested depth.
        dist, pred = dijkstra(
            matrix, directed=True, indices=start, unweighted=True, return_predecessors=True,
            limit=np.inf if depth is None else float(depth),
        )
        dist[start] = np.inf
        order = np.flatnonzero(np.isfinite(dist))
        if len(order) == 0:
            return pd.DataFrame(columns=["ref", "depth", "parent", "via"]).astype({"depth": "int64"})
        depths = dist[order].astype(np.int64)
        # Sort by depth, then alphabetically, on integer ranks: a string sort of a 100,000-node
        # impact set costs more than the walk itself.
        ranked = np.lexsort((self._alphabetical_rank()[order], depths))
        order, depths = order[ranked], depths[ranked]
        parents = pred[order]
        via = self._via(order, parents) if reverse else self._via(parents, order)
        return pd.DataFrame(
            {
                "ref": pd.Series(self.refs[order], dtype=object),
                "depth": depths,
                "parent": pd.Series(self.refs[parents], dtype=object),
                "via": pd.Series(via, dtype=object),
            }
        )

    def _alphabetical_rank(self) -> np.ndarray:
        if getattr(self, "_rank", None) is None or len(self._rank) != len(self.refs):
            rank = np.empty(len(self.refs), dtype=np.int64)
            rank[pd.Series(self.refs, dtype="str").argsort().to_numpy()] = np.arange(len(self.refs))
            self._rank = rank
        return self._rank

    def reach_count(self, code: int, *, reverse: bool = True) -> np.ndarray:
        from scipy.sparse.csgraph import breadth_first_order

        matrix = self.needed_by if reverse else self.needs
        return breadth_first_order(matrix, code, directed=True, return_predecessors=False)[1:]

    def strongly_connected(self) -> tuple[int, np.ndarray]:
        from scipy.sparse.csgraph import connected_components

        return connected_components(self.needs, directed=True, connection="strong")

    def cycle_labels(self) -> np.ndarray:
        """Per node, the id of the dependency cycle it is in (1 = largest), or 0."""
        _, labels = self.strongly_connected()
        sizes = np.bincount(labels)
        cyclic = (sizes[labels] > 1) | (self.needs.diagonal() > 0)
        out = np.zeros(len(self), dtype=np.int64)
        if not cyclic.any():
            return out
        # Number the cycles by size, then by their alphabetically first member, so ids are stable.
        frame = pd.DataFrame({"label": labels[cyclic], "ref": self.refs[cyclic]})
        keyed = frame.groupby("label").agg(size=("ref", "size"), first=("ref", "min"))
        keyed = keyed.sort_values(["size", "first"], ascending=[False, True])
        ids = pd.Series(np.arange(1, len(keyed) + 1), index=keyed.index)
        out[cyclic] = ids.reindex(labels[cyclic]).to_numpy()
        return out

    def shortest_cycle_through(self, ref: str) -> list[str]:
        """The shortest dependency cycle through `ref`, as a path that ends where it starts."""
        from scipy.sparse.csgraph import dijkstra

        start = self.code(ref)
        if self.needs[start, start]:
            return [ref, ref]
        dist, pred = dijkstra(self.needs, directed=True, indices=start, unweighted=True, return_predecessors=True)
        back = self.needed_by.indices[self.needed_by.indptr[start] : self.needed_by.indptr[start + 1]]
        back = back[np.isfinite(dist[back])]
        if len(back) == 0:
            return []
        last = int(back[np.argmin(dist[back])])
        path = [last]
        while path[-1] != start:
            path.append(int(pred[path[-1]]))
        return [str(self.refs[c]) for c in reversed(path)] + [ref]

    def cycles(self, owners: pd.Series | None = None, *, labels: np.ndarray | None = None, max_members: int = 50) -> pd.DataFrame:
        """Dependency cycles: one row per strongly connected component with more than one node,
        and per node that needs itself. `example` is the shortest cycle through the component's
        alphabetically first member; `members` lists up to `max_members` refs (the nodes table
        has every node's `cycle_id`), `owners` the teams owning any member.
        """
        columns = ["cycle_id", "size", "members", "example", "owners"]
        labels = self.cycle_labels() if labels is None else labels
        if len(self) == 0 or not labels.any():
            return pd.DataFrame(columns=columns)
        frame = pd.DataFrame({"cycle_id": labels, "ref": self.refs}).loc[labels > 0]
        if owners is not None:
            frame["owner"] = owners.reindex(frame["ref"]).to_numpy()
        else:
            frame["owner"] = None
        rows = []
        for cycle_id, group in frame.groupby("cycle_id", sort=True):
            refs = sorted(group["ref"])
            shown = ",".join(refs[:max_members]) + (f",… (+{len(refs) - max_members} more)" if len(refs) > max_members else "")
            rows.append(
                {
                    "cycle_id": int(cycle_id),
                    "size": len(refs),
                    "members": shown,
                    "example": " -> ".join(self.shortest_cycle_through(refs[0])),
                    "owners": ",".join(sorted(group["owner"].dropna().unique())),
                }
            )
        return pd.DataFrame(rows, columns=columns)

    def most_depended_on(self, *, top: int = 50, candidates: int | None = None, owners: pd.Series | None = None) -> pd.DataFrame:
        """The entities with the largest blast radius: transitive dependents, then direct ones.

        Exact transitive counts for every node would cost one traversal per node; instead they are
        computed exactly for a candidate set (the nodes with the most direct dependents and the
        most dependents-of-dependents), which is where the large blast radii are. Members of one
        dependency cycle share their dependents, so each cycle is walked once. `dependent_teams`
        counts the distinct owners among the transitive dependents: the teams an outage reaches.
        """
        columns = ["rank", "ref", "direct_dependents", "transitive_dependents", "dependent_teams"]
        n = len(self)
        if n == 0 or self.needs.nnz == 0:
            return pd.DataFrame(columns=columns)
        # A node that needs itself is a cycle, not a dependent: keep the diagonal out of the counts.
        direct = np.bincount(self.needs.indices, minlength=n) - (self.needs.diagonal() > 0)
        two_hop = self.needs.T @ direct  # Σ over my dependents of their own dependents
        k = candidates or max(4 * top, 200)
        picked = sorted(c for c in set(_top_codes(direct, k)) | set(_top_codes(direct + two_hop, k)) if direct[c] > 0)
        owner_codes, n_owners = None, 0
        if owners is not None:
            aligned = owners.reindex(self.refs) if not owners.index.equals(self.codes) else owners
            owner_codes, owner_names = pd.factorize(aligned.to_numpy(dtype=object))
            n_owners = len(owner_names)
        _, labels = self.strongly_connected()
        walked: dict[int, tuple[int, int]] = {}
        rows = []
        for code in picked:
            label = int(labels[code])
            if label not in walked:
                reached = self.reach_count(code)
                teams = 0
                if owner_codes is not None and n_owners:
                    seen = np.zeros(n_owners + 1, dtype=bool)
                    seen[owner_codes[reached]] = True  # -1 (no owner) lands in the spare last slot
                    teams = int(seen[:n_owners].sum())
                # Inside a cycle the walk also reaches the other members (and itself): count
                # everything reached except the node itself, the same for every member.
                walked[label] = (len(reached), teams)
            total, teams = walked[label]
            rows.append((self.refs[code], int(direct[code]), total, teams))
        out = pd.DataFrame(rows, columns=columns[1:])
        out = out.sort_values(["transitive_dependents", "direct_dependents", "ref"], ascending=[False, False, True]).head(top)
        out.insert(0, "rank", np.arange(1, len(out) + 1))
        return out.reset_index(drop=True)


def _top_codes(values: np.ndarray, k: int) -> np.ndarray:
    if k >= len(values):
        return np.arange(len(values))
    return np.argpartition(-values, k)[:k]


# ---------------------------------------------------------------------------------------------
# Views over the graph: teams, systems, ownership
# ---------------------------------------------------------------------------------------------


def _contract(s_code: np.ndarray, t_code: np.ndarray, names: np.ndarray, src: np.ndarray, tgt: np.ndarray, level: str) -> pd.DataFrame:
    """Group edges by (source level, target level) codes; -1 (no owner/system) rows are dropped."""
    s, t = f"source_{level}", f"target_{level}"
    keep = (s_code >= 0) & (t_code >= 0)
    if not keep.any():
        return pd.DataFrame(columns=[s, t, "edges", "sources", "targets", "internal"])
    frame = pd.DataFrame({"s": s_code[keep], "t": t_code[keep], "src": src[keep], "tgt": tgt[keep]})
    out = (
        frame.groupby(["s", "t"], sort=False)
        .agg(edges=("src", "size"), sources=("src", "nunique"), targets=("tgt", "nunique"))
        .reset_index()
    )
    out.insert(0, s, names[out.pop("s").to_numpy()])
    out.insert(1, t, names[out.pop("t").to_numpy()])
    out["internal"] = out[s] == out[t]
    return out.sort_values(["edges", s, t], ascending=[False, True, True], ignore_index=True)


def subgraph(
    annotated: pd.DataFrame,
    nodes: pd.DataFrame,
    *,
    team: str | None = None,
    system: str | None = None,
    org: OrgGraph | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Nodes and edges of one team (with its sub-teams when `org` is given) or one system.

    Edges keep a `scope`: `internal` (both ends inside), `outgoing` (inside needs outside) or
    `incoming` (outside needs inside): the boundary is what a team has to negotiate about.
    """
    if (team is None) == (system is None):
        raise ValueError("give exactly one of team= or system=")
    if team is not None:
        scope = {team.lower()} | (org.descendants(team.lower()) if org is not None else set())
        inside = nodes[nodes["owner"].isin(scope)]
    else:
        inside = nodes[nodes["system"] == system.lower()]
    members = set(inside["ref"])
    src_in = isin(annotated["source"], members).to_numpy()
    tgt_in = isin(annotated["target"], members).to_numpy()
    mask = src_in | tgt_in
    edges = annotated[mask].copy()
    s, t = src_in[mask], tgt_in[mask]
    edges["scope"] = np.where(s & t, "internal", np.where(s, "outgoing", "incoming"))
    return inside.reset_index(drop=True), edges.reset_index(drop=True)


def team_ownership(nodes: pd.DataFrame, org: OrgGraph) -> pd.DataFrame:
    """The ownership graph rolled up the group hierarchy: entities per group and kind.

    `owned` counts what the group owns itself; `owned_rollup` adds everything its sub-groups own.
    """
    owned = nodes[nodes["in_catalog"] & nodes["owner"].notna()]
    direct = owned.groupby(["owner", "kind"]).size().rename("owned").reset_index().rename(columns={"owner": "group_ref"})
    rollup = org.rollup_frame()
    rolled = (
        direct.merge(rollup, on="group_ref", how="left")
        .assign(rollup_ref=lambda f: f["rollup_ref"].fillna(f["group_ref"]))
        .groupby(["rollup_ref", "kind"])["owned"]
        .sum()
        .rename("owned_rollup")
        .reset_index()
        .rename(columns={"rollup_ref": "group_ref"})
    )
    out = rolled.merge(direct, on=["group_ref", "kind"], how="left")
    out["owned"] = out["owned"].fillna(0).astype("int64")
    out["owner_kind"] = kind_of(out["group_ref"])
    return out.sort_values(["group_ref", "kind"], ignore_index=True)[["group_ref", "owner_kind", "kind", "owned", "owned_rollup"]]


@dataclass
class GraphAnalysis:
    """Everything the relationship-graph asset stores, computed in one pass."""

    nodes: pd.DataFrame
    edges: pd.DataFrame  # annotated
    cycles: pd.DataFrame
    most_depended_on: pd.DataFrame
    team_dependencies: pd.DataFrame
    system_dependencies: pd.DataFrame
    team_ownership: pd.DataFrame
    graph: DependencyGraph
    edge_ids: pd.DataFrame  # the stored edge table: source_id, target_id (nodes.node_id), via


def analyse(
    entities: pd.DataFrame,
    relations: pd.DataFrame,
    org: OrgGraph | None = None,
    *,
    top: int = 50,
) -> GraphAnalysis:
    """Build the dependency graph from the catalog frames and compute every stored view.

    Works on integer codes throughout (see `CodedRelations`); strings are looked up only to build
    the output frames.
    """
    coded = CodedRelations.encode(relations, extra=entities["ref"])
    index = entity_index(entities, coded)
    src, tgt, via = coded.dependency_edges()
    n = len(coded.refs)
    ent_codes = coded.index.get_indexer(index["ref"])
    in_catalog = np.zeros(n, dtype=bool)
    in_catalog[ent_codes] = True
    touched = np.zeros(n, dtype=bool)
    touched[src] = True
    touched[tgt] = True
    outside = np.flatnonzero(touched & ~in_catalog)

    owner_by_code = np.full(n, None, dtype=object)
    owner_by_code[ent_codes] = index["owner"].to_numpy(dtype=object, na_value=None)
    system_by_code = np.full(n, None, dtype=object)
    system_by_code[ent_codes] = index["system"].to_numpy(dtype=object, na_value=None)

    graph = DependencyGraph.from_codes(coded.refs, src, tgt, via)
    labels = graph.cycle_labels()
    owners = pd.Series(owner_by_code, index=graph.codes)
    cycles = graph.cycles(owners, labels=labels)

    nodes = pd.concat(
        [index[["ref", "kind", "namespace", "name", "owner", "system", "lifecycle"]].assign(in_catalog=True), _outside_nodes(coded.refs[outside])],
        ignore_index=True,
    )
    node_codes = np.concatenate([ent_codes, outside])
    nodes["direct_dependencies"] = np.bincount(src, minlength=n)[node_codes]
    nodes["direct_dependents"] = np.bincount(tgt, minlength=n)[node_codes]
    cycle_id = labels[node_codes]
    nodes["cycle_id"] = pd.array(np.where(cycle_id > 0, cycle_id, 0), dtype="Int64").astype("Int64")
    nodes.loc[cycle_id == 0, "cycle_id"] = pd.NA
    # Sort on integer ranks of the refs: string sorts of 200,000 nodes and 700,000 edges cost
    # seconds, the ranks are computed once.
    rank = graph._alphabetical_rank()
    by_ref = np.argsort(rank[node_codes], kind="stable")
    nodes = nodes.iloc[by_ref].reset_index(drop=True)
    nodes.insert(0, "node_id", np.arange(len(nodes), dtype=np.int64))
    node_id_of = np.full(n, -1, dtype=np.int64)
    node_id_of[node_codes[by_ref]] = np.arange(len(nodes), dtype=np.int64)

    # Blast radius counts runtime dependencies only (dependsOn, consumesApi, and an API's
    # provider): a subcomponent is structure, and through it every part of a system "needs" every
    # other, which gave the whole top list one shared giant count.
    runtime = via != VIA_ORDER.index("hasSubcomponent")
    runtime_graph = graph if runtime.all() else DependencyGraph.from_codes(coded.refs, src[runtime], tgt[runtime], via[runtime])
    top_frame = runtime_graph.most_depended_on(top=top, owners=owners)
    if len(top_frame):
        top_frame = top_frame.merge(nodes[["ref", "kind", "owner", "system"]], on="ref", how="left")

    by_name = np.lexsort((rank[tgt], rank[src]))
    es, et = src[by_name], tgt[by_name]
    columns = {
        "source": coded.refs[es],
        "target": coded.refs[et],
        "via": np.asarray(VIA_ORDER, dtype=object)[via[by_name]],
        "source_owner": owner_by_code[es],
        "target_owner": owner_by_code[et],
        "source_system": system_by_code[es],
        "target_system": system_by_code[et],
    }
    # Object columns: converting 700,000-row columns to Arrow strings costs more than it saves.
    edges = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})
    # The stored form: node ids instead of refs, a third of the bytes to write and read back.
    edge_ids = pd.DataFrame({"source_id": node_id_of[es], "target_id": node_id_of[et], "via": columns["via"]})
    owner_codes, owner_names = pd.factorize(owner_by_code)
    system_codes, system_names = pd.factorize(system_by_code)
    return GraphAnalysis(
        nodes=nodes,
        edges=edges,
        cycles=cycles,
        most_depended_on=top_frame,
        team_dependencies=_contract(owner_codes[src], owner_codes[tgt], np.asarray(owner_names, dtype=object), src, tgt, "owner"),
        system_dependencies=_contract(system_codes[src], system_codes[tgt], np.asarray(system_names, dtype=object), src, tgt, "system"),
        team_ownership=team_ownership(nodes, org) if org is not None else pd.DataFrame(),
        graph=graph,
        edge_ids=edge_ids,
    )


def impact_summary(traversal: pd.DataFrame, nodes: pd.DataFrame) -> dict[str, Any]:
    """Who to tell: the owners and systems among a traversal's nodes, with counts."""
    info = traversal.merge(nodes[["ref", "kind", "owner", "system"]], on="ref", how="left")
    return {
        "entities": len(info),
        "owners": sorted(info["owner"].dropna().unique().tolist()),
        "systems": sorted(info["system"].dropna().unique().tolist()),
        "by_kind": {k: int(v) for k, v in info["kind"].value_counts().sort_index().items()},
    }
