"""Trim a vendor's OpenAPI description to the operations the collectors call.

Keeps the top-level metadata (openapi/swagger, info, servers, security), the GET operations of the
given paths (and path-level parameters), and every component they reference, transitively (`$ref`
closure), plus the security schemes. The result is a valid, much smaller description that Prism
serves the same way for those paths. Re-run it to refresh a copy (see each vendor's SOURCE.md):

    python tests/data/openapi/trim.py FULL.json OUT.json /path/one '/path/{two}' ...

One change besides trimming: the `example` of a response header named `link` is dropped. GitHub's
(`<https://api.github.com/resource?page=2>; rel="next"`) is a placeholder for a path the API does
not have; served by Prism it would send every paging client there. Without it Prism serves the
header's schema (a plain string), i.e. a last page. And Atlassian writes its JSON examples as
JSON *strings* (`"example": "{\"startAt\":0,…}"`), which Prism would serve as a string: an example
of an `application/json` response that is a string holding a JSON object or array is replaced by
that object or array (same content).

Swagger 2.0 descriptions (GitLab's `doc/api/openapi/openapi_v2.yaml`) go through the same code:
the kept top-level keys include Swagger's `host`, `produces` and `securityDefinitions`, and a
`#/definitions/Name/...` reference copies the whole `Name`. YAML is read without YAML's timestamp
type, so an unquoted date in an example stays the string the vendor wrote (and the JSON output
stays JSON).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

KEEP_TOP = ("openapi", "swagger", "info", "servers", "security", "host", "basePath", "schemes",
            "produces", "consumes", "securityDefinitions")


def refs(node: Any) -> set[str]:
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/"):
                found.add(ref)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def trim(doc: dict[str, Any], paths: list[str], methods: tuple[str, ...] = ("get",)) -> dict[str, Any]:
    out: dict[str, Any] = {key: doc[key] for key in KEEP_TOP if key in doc}
    out["paths"] = {}
    for path in paths:
        item = doc["paths"][path]
        out["paths"][path] = {k: v for k, v in item.items() if k in methods or k == "parameters"}
    pending = refs(out["paths"])
    for scheme_holder in ("components",):
        schemes = doc.get(scheme_holder, {}).get("securitySchemes")
        if schemes:
            out.setdefault("components", {})["securitySchemes"] = schemes
    done: set[str] = set()
    while pending:
        ref = pending.pop()
        if ref in done:
            continue
        done.add(ref)
        # Copy the whole component a ref points into (`#/components/schemas/Tag/allOf/0` -> `Tag`;
        # Swagger 2: `#/definitions/Name/...` -> `Name`).
        depth = 3 if ref.startswith("#/components/") else 2
        parts = ref[2:].split("/")[:depth]
        ref = "#/" + "/".join(parts)
        target = resolve(doc, ref)
        holder = out
        for part in parts[:-1]:
            holder = holder.setdefault(part.replace("~1", "/").replace("~0", "~"), {})
        holder[parts[-1].replace("~1", "/").replace("~0", "~")] = target
        pending |= refs(target) - done
    for item in out["paths"].values():
        for operation in item.values():
            for response in (operation.get("responses") or {}).values() if isinstance(operation, dict) else ():
                media = (response.get("content") or {}).get("application/json") if isinstance(response, dict) else None
                example = media.get("example") if isinstance(media, dict) else None
                if isinstance(example, str) and example.lstrip()[:1] in ("{", "["):
                    try:
                        media["example"] = json.loads(example)
                    except ValueError:
                        pass
    link = out.get("components", {}).get("headers", {}).get("link")
    if isinstance(link, dict) and "example" in link:
        out["components"]["headers"]["link"] = {k: v for k, v in link.items() if k != "example"}
    return out


def load(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        class Loader(yaml.SafeLoader):
            """SafeLoader that leaves timestamps as the strings they are in the file."""

        Loader.yaml_implicit_resolvers = {
            first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
            for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
        return yaml.load(text, Loader=Loader)
    return json.loads(text)


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    source, target, *paths = argv
    trimmed = trim(load(Path(source)), paths)
    Path(target).write_text(json.dumps(trimmed, indent=1, sort_keys=False) + "\n")
    print(f"{target}: {len(trimmed['paths'])} paths, {Path(target).stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
