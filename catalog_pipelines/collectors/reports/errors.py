"""What every report parser shares: the one error type, size limits, and safe JSON/XML readers.

Report files are untrusted input (anyone who can push to a CI job writes them):
- every XML document goes through `defusedxml` with entity declarations and external references
  forbidden (billion laughs, quadratic blow-up, XXE); a DOCTYPE alone is allowed, JaCoCo writes one;
- a file larger than the configured limit is refused before it is read;
- every failure is a `ReportError`: file, place (line/column, or a JSON path) and reason, one line.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DEFAULT_MAX_FILE_BYTES = 100 * 1024 * 1024  # 100 MiB: larger than any real report we know of


class ReportError(Exception):
    """A report that cannot be read: `file`, `place` (may be empty) and `reason`, on one line."""

    def __init__(self, file: str, place: str, reason: str):
        self.file = str(file)
        self.place = _one_line(place)
        self.reason = _one_line(reason)
        super().__init__(str(self))

    def __str__(self) -> str:
        return ": ".join(part for part in (self.file, self.place, self.reason) if part)

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "place": self.place, "reason": self.reason}


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def read_limited(path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_FILE_BYTES, *, shown: str | None = None) -> bytes:
    """The bytes of `path`, refusing (before reading) a file larger than `max_bytes`; a file that
    grows while read is refused too (at most `max_bytes + 1` bytes are ever read)."""
    shown = shown or str(path)
    try:
        size = os.stat(path).st_size
        if size > max_bytes:
            raise ReportError(shown, "", f"file is {size} bytes, over the limit of {max_bytes} bytes")
        with open(path, "rb") as handle:
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        raise ReportError(shown, "", f"cannot read: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ReportError(shown, "", f"file grew over the limit of {max_bytes} bytes while read")
    return data


# ---------------------------------------------------------------------------------------------
# JSON


def load_json(data: bytes, name: str, what: str) -> Any:
    """Decode JSON (orjson) or raise a ReportError with line and column; `what` names the format
    for the message ("SARIF log")."""
    import orjson

    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        rest = data[exc.pos :].strip() if exc.pos is not None else b"x"
        start = data.lstrip()[:1]
        if start == b"<" or (start and start not in b"{[" and exc.pos == 0):
            kind = "XML" if start == b"<" else "not JSON"
            raise ReportError(name, "line 1", f"not a {what}: the file is {kind} (a {what} is JSON)") from None
        if not rest:
            reason = f"truncated JSON: the {what} ends inside a value"
        else:
            reason = f"invalid JSON ({exc.msg})"
        raise ReportError(name, f"line {exc.lineno} column {exc.colno}", reason) from None


def expect(cond: bool, name: str, place: str, reason: str) -> None:
    if not cond:
        raise ReportError(name, place, reason)


def as_list(value: Any, name: str, place: str) -> list[Any]:
    """`value` as a list: null/absent is empty (real tools write `null`), anything else an error."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ReportError(name, place, f"expected an array, found {type(value).__name__}")
    return value


def as_dict(value: Any, name: str, place: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ReportError(name, place, f"expected an object, found {type(value).__name__}")
    return value


# ---------------------------------------------------------------------------------------------
# XML


def local(tag: str) -> str:
    """The element name without its namespace prefix (`j:testcase` -> `testcase`)."""
    return tag.rpartition(":")[2]


def _line_of(data: bytes, needle: bytes) -> str:
    at = data.find(needle)
    return "line %d" % (data.count(b"\n", 0, at) + 1) if at >= 0 else ""


class XmlHandler:
    """What `parse_xml` calls: `start(name, attributes)` per element, and `end(name)` (set
    `wants_end = False` to skip end events). Names keep any prefix (`j:testcase`)."""

    wants_end = True

    def start(self, name: str, attrs: dict[str, str]) -> None: ...

    def end(self, name: str) -> None: ...


def parse_xml(data: bytes, name: str, handler: XmlHandler) -> None:
    """Stream an untrusted XML document into `handler`, through defusedxml.

    The expat parser is the one defusedxml builds and hardens (`DefusedExpatParser`): entity
    declarations (billion laughs, quadratic blow-up, external entities) and external references
    are refused, with a ReportError naming the line of the declaration. Element events go straight
    to the handler (no tree, no SAX attribute objects: memory stays flat and large files fast).
    Malformed XML (a truncated file) is a ReportError with expat's line and column. A handler
    raises ReportError for a well-formed document that is not its format.
    """
    import defusedxml
    from defusedxml.expatreader import DefusedExpatParser
    from pyexpat import ExpatError, errors

    reader = DefusedExpatParser(forbid_dtd=False, forbid_entities=True, forbid_external=True)
    reader.reset()  # creates the hardened pyexpat parser
    expat = reader._parser
    expat.StartElementHandler = handler.start
    if handler.wants_end:
        expat.EndElementHandler = handler.end
    else:
        expat.EndElementHandler = None
    expat.CharacterDataHandler = None
    expat.ProcessingInstructionHandler = None
    try:
        expat.Parse(data, True)
    except defusedxml.EntitiesForbidden as exc:
        raise ReportError(name, _line_of(data, b"<!ENTITY"), f"XML entity declaration {exc.name!r} refused (entity expansion and external entities are not allowed in report files)") from None
    except defusedxml.ExternalReferenceForbidden as exc:
        raise ReportError(name, _line_of(data, b"SYSTEM"), f"external reference {exc.sysid!r} refused") from None
    except ExpatError as exc:
        reason = errors.messages.get(exc.code, str(exc).split(":")[0]) if exc.code else str(exc).split(":")[0]
        if reason.startswith(("no element found", "unclosed token")):
            reason = f"truncated or malformed XML ({reason})"
        else:
            reason = f"malformed XML ({reason})"
        raise ReportError(name, f"line {exc.lineno} column {exc.offset + 1}", reason) from None
    finally:
        reader._parser = None  # break the handler <-> parser cycle


_NUMBER = re.compile(r"^\s*-?\d+(\.\d+)?\s*$")


def number(value: Any, name: str, place: str, default: float | None = None) -> float:
    """An attribute or field that must be a number (strings such as "12" allowed)."""
    if value is None or value == "":
        if default is not None:
            return default
        raise ReportError(name, place, "missing number")
    if isinstance(value, bool):
        raise ReportError(name, place, f"expected a number, found {value!r}")
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str) and _NUMBER.match(value):
        return float(value) if "." in value else int(value)
    raise ReportError(name, place, f"expected a number, found {str(value)[:40]!r}")


def pct(covered: float, total: float) -> float:
    return round(100.0 * covered / total, 2) if total else 0.0


def display_name(path: str | os.PathLike[str]) -> str:
    return str(Path(path))


# ---------------------------------------------------------------------------------------------
# Vulnerability scanners (Trivy, Grype, OSV-Scanner)

SEVERITIES = ("critical", "high", "medium", "low", "unknown")
# Vendor words -> our five buckets. Grype's "Negligible" is below low; GitHub advisories say "moderate".
_SEVERITY_WORDS = {"critical": "critical", "high": "high", "medium": "medium", "moderate": "medium", "low": "low", "negligible": "low"}


def severity_bucket(word: Any) -> str:
    return _SEVERITY_WORDS.get(str(word).strip().lower(), "unknown") if word is not None else "unknown"


def cvss_bucket(score: float) -> str:
    """CVSS v3 qualitative rating: 9.0+ critical, 7.0+ high, 4.0+ medium, above 0 low."""
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    return "low" if score > 0 else "unknown"


def vulnerability_facts(by_severity: dict[str, int], tool: str) -> dict[str, Any]:
    return {"vulnerabilities_by_severity": by_severity, "vulnerabilities_total": sum(by_severity.values()), "tools": [tool]}
