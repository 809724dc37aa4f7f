"""Backstage's field validator functions, one Python function per TypeScript one.

`CommonValidatorFunctions` and `KubernetesValidatorFunctions` from `@backstage/catalog-model`, plus
the defaults that `makeValidator()` wires together (which `FieldFormatEntityPolicy` uses). Each
function takes any value and returns a bool, exactly like the originals: a non-string is simply
invalid, never an exception. The conformance vectors in `tests/data/backstage-conformance` pin
their behaviour.

Regexes are compiled once at import: these run several times per entity on the ingestion hot path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_DNS_LABEL = re.compile(r"[a-z0-9]+(?:-+[a-z0-9]+)*")
# The deprecated `CommonValidatorFunctions.isValidTag` has no ':' and no repeated '-'.
_COMMON_TAG = re.compile(r"[a-z0-9+#]+(?:-[a-z0-9+#]+)*")
# `makeValidator().isValidTag` (what entities are checked against) also allows ':'.
_TAG = re.compile(r"[a-z0-9:+#]+(?:-[a-z0-9:+#]+)*")
_KIND = re.compile(r"[a-zA-Z][a-z0-9A-Z]*")
_OBJECT_NAME = re.compile(r"(?:[a-zA-Z0-9][-a-zA-Z0-9_.]*)?[a-zA-Z0-9]")
_API_VERSION_SUFFIX = re.compile(r"[a-z0-9A-Z]+")

# WHATWG URL parsing, reduced to what decides validity for catalog links: a scheme, and for the
# "special" schemes a non-empty host with a valid port. `new URL()` strips leading and trailing C0
# controls and spaces before parsing, which is why "   abc" fails (no scheme) but "  http://x" passes.
_URL_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_SPECIAL_SCHEMES = frozenset({"http", "https", "ftp", "ws", "wss", "file"})
_FORBIDDEN_HOST = re.compile(r"[\x00\t\n\r #/<>?@\[\\\]^|%]")
_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))
# Nearly every link is a plain http(s) URL with an ordinary host; this one regex settles those
# without the general parse below (links are checked for every entity on the hot path).
PLAIN_WEB_URL = re.compile(r"https?://[A-Za-z0-9.\-]+(?:[/?#]|\Z)", re.ASCII)


def is_valid_prefix_and_or_suffix(
    value: Any,
    separator: str,
    is_valid_prefix: Callable[[str], bool],
    is_valid_suffix: Callable[[str], bool],
) -> bool:
    """`[prefix<separator>]suffix` where each part passes its own validator."""
    if type(value) is not str:
        return False
    parts = value.split(separator)
    if len(parts) == 1:
        return is_valid_suffix(parts[0])
    if len(parts) == 2:
        return is_valid_prefix(parts[0]) and is_valid_suffix(parts[1])
    return False


def is_json_safe(value: Any) -> bool:
    """True when the value survives a JSON round trip unchanged (no functions, symbols, undefined)."""
    try:
        return json.loads(json.dumps(value, allow_nan=False)) == value
    except (TypeError, ValueError):
        return False


def is_valid_dns_subdomain(value: Any) -> bool:
    """Dot-separated DNS labels, at most 253 characters in total."""
    if type(value) is not str or not 1 <= len(value) <= 253:
        return False
    return all(is_valid_dns_label(label) for label in value.split("."))


def is_valid_dns_label(value: Any) -> bool:
    """Lower-case alphanumerics separated by dashes (repeats allowed since IDN support), ≤ 63."""
    return type(value) is str and 1 <= len(value) <= 63 and _DNS_LABEL.fullmatch(value) is not None


def is_valid_common_tag(value: Any) -> bool:
    """The deprecated `CommonValidatorFunctions.isValidTag` (no ':' and no repeated '-')."""
    return type(value) is str and 1 <= len(value) <= 63 and _COMMON_TAG.fullmatch(value) is not None


def is_valid_tag(value: Any) -> bool:
    """The tag rule entities are checked against: `^[a-z0-9:+#]+(-[a-z0-9:+#]+)*$`, 1–63 chars."""
    return type(value) is str and 1 <= len(value) <= 63 and _TAG.fullmatch(value) is not None


def is_valid_url(value: Any) -> bool:
    """Whether `new URL(value)` would accept the string (see the module notes on the subset)."""
    if type(value) is not str:
        return False
    if PLAIN_WEB_URL.match(value) is not None:
        return True
    text = value.strip(_C0_AND_SPACE)
    match = _URL_SCHEME.match(text)
    if match is None:
        return False
    if match.group(1).lower() not in _SPECIAL_SCHEMES:
        return True
    rest = text[match.end() :].lstrip("/\\")
    authority = re.split(r"[/\\?#]", rest, maxsplit=1)[0]
    host_port = authority.rpartition("@")[2]
    if host_port.startswith("["):
        # IPv6 literal: accept the bracketed form, check only what follows it.
        close = host_port.find("]")
        if close == -1:
            return False
        host, port = host_port[: close + 1], host_port[close + 1 :]
        if port and not port.startswith(":"):
            return False
        port = port[1:]
    else:
        host, _, port = host_port.partition(":")
        if _FORBIDDEN_HOST.search(host):
            return False
    if match.group(1).lower() != "file" and not host:
        return False
    return not port or (port.isdigit() and int(port) <= 65535)


def is_non_empty_string(value: Any) -> bool:
    """A string with at least one non-whitespace character."""
    return type(value) is str and value.strip() != ""


def is_valid_api_version(value: Any) -> bool:
    """`[dns-subdomain/]version`, e.g. `backstage.io/v1alpha1`."""
    return is_valid_prefix_and_or_suffix(value, "/", is_valid_dns_subdomain, _is_valid_api_version_suffix)


def _is_valid_api_version_suffix(value: str) -> bool:
    return 1 <= len(value) <= 63 and _API_VERSION_SUFFIX.fullmatch(value) is not None


def is_valid_kind(value: Any) -> bool:
    """A letter followed by letters and digits, 1–63 characters."""
    return type(value) is str and 1 <= len(value) <= 63 and _KIND.fullmatch(value) is not None


def is_valid_object_name(value: Any) -> bool:
    """`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`, 1–63 characters (entity names, label values)."""
    return type(value) is str and 1 <= len(value) <= 63 and _OBJECT_NAME.fullmatch(value) is not None


def is_valid_namespace(value: Any) -> bool:
    """Namespaces are lower-case DNS labels."""
    return is_valid_dns_label(value)


def is_valid_label_key(value: Any) -> bool:
    """`[dns-subdomain/]object-name`."""
    return is_valid_prefix_and_or_suffix(value, "/", is_valid_dns_subdomain, is_valid_object_name)


def is_valid_label_value(value: Any) -> bool:
    """Empty, or an object name."""
    return value == "" or is_valid_object_name(value)


def is_valid_annotation_key(value: Any) -> bool:
    """Same rule as label keys."""
    return is_valid_prefix_and_or_suffix(value, "/", is_valid_dns_subdomain, is_valid_object_name)


def is_valid_annotation_value(value: Any) -> bool:
    """Any string, of any length."""
    return type(value) is str


def is_valid_entity_name(value: Any) -> bool:
    """`makeValidator().isValidEntityName`: the Kubernetes object-name rule."""
    return is_valid_object_name(value)


class Memo(dict):
    """A validator memoised by value, for the strings that repeat across entities.

    The same few hundred annotation keys, label values, tags and apiVersions appear on every
    entity of a catalog, so `memo[value]` (a plain dict hit, no Python call) replaces most checks
    on the hot path. Only hashable values may be looked up; callers pass strings. The memo is
    simply emptied when full: the working set refills it within a few entities.
    """

    __slots__ = ("check", "size")

    def __init__(self, check: Callable[[Any], bool], size: int = 8192) -> None:
        super().__init__()
        self.check = check
        self.size = size

    def __missing__(self, value: Any) -> bool:
        ok = self.check(value)
        if len(self) >= self.size:
            self.clear()
        self[value] = ok
        return ok


# Keyed by the names Backstage's tests call, so the conformance vectors can look functions up.
COMMON_VALIDATORS: dict[str, Callable[..., bool]] = {
    "isValidPrefixAndOrSuffix": is_valid_prefix_and_or_suffix,
    "isJsonSafe": is_json_safe,
    "isValidDnsSubdomain": is_valid_dns_subdomain,
    "isValidDnsLabel": is_valid_dns_label,
    "isValidTag": is_valid_common_tag,
    "isValidUrl": is_valid_url,
    "isNonEmptyString": is_non_empty_string,
}
KUBERNETES_VALIDATORS: dict[str, Callable[[Any], bool]] = {
    "isValidApiVersion": is_valid_api_version,
    "isValidKind": is_valid_kind,
    "isValidObjectName": is_valid_object_name,
    "isValidNamespace": is_valid_namespace,
    "isValidLabelKey": is_valid_label_key,
    "isValidLabelValue": is_valid_label_value,
    "isValidAnnotationKey": is_valid_annotation_key,
    "isValidAnnotationValue": is_valid_annotation_value,
}
# `makeValidator()` defaults: what FieldFormatEntityPolicy checks entity fields with.
ENTITY_VALIDATORS: dict[str, Callable[[Any], bool]] = {
    "isValidApiVersion": is_valid_api_version,
    "isValidKind": is_valid_kind,
    "isValidEntityName": is_valid_entity_name,
    "isValidNamespace": is_valid_namespace,
    "isValidLabelKey": is_valid_label_key,
    "isValidLabelValue": is_valid_label_value,
    "isValidAnnotationKey": is_valid_annotation_key,
    "isValidAnnotationValue": is_valid_annotation_value,
    "isValidTag": is_valid_tag,
}
