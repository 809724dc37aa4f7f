"""Resource limits for reading untrusted descriptor files and processing entities.

Catalog files come from many repositories and anyone can commit one, so every unbounded input
(file size, document size, YAML alias expansion, nesting, placeholder files, Location chains) has
a ceiling. Exceeding one rejects that document or file with a reason; it never stops the cycle.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Ceilings for the descriptor loader (`providers/descriptors/`) and for `process_entity`.

    - `max_file_bytes`: a larger descriptor file is not read at all.
    - `max_document_bytes`: one YAML document (the text between `---` markers) larger than this is
      rejected before it is parsed, so a 10 MB annotation costs a split, not a parse.
    - `max_yaml_nodes`: nodes in a document *after* alias expansion; this is what stops a
      "billion laughs" alias bomb, which is tiny on disk and enormous once expanded.
    - `max_yaml_depth`: nesting depth of a document (also after alias expansion).
    - `max_entity_bytes`: the serialised entity (after placeholders are substituted).
    - `max_placeholder_bytes`: one file read by a `$text`/`$json`/`$yaml` placeholder.
    - `max_placeholder_bytes_per_file`: everything the placeholders of one descriptor file pull
      in, summed over its documents (the same target counted each time it is used), so that 300
      `$text: ./big.txt` in one file cannot turn 1 MB of input into a 300 MB catalog.
    - `max_placeholder_bytes_per_chunk`: the same sum over one chunk (the pages collected under
      one `provider.around()`), which bounds the amplification spread over many small files.
    - `max_location_depth`: how many Location files deep a chain may go.
    - `max_documents_per_file`: documents of one file that are read; the rest are not split out
      or parsed and one rejection says so.
    - `max_glob_matches`: files one glob Location target may match; the first ones in path
      order are followed and one rejection says the target was cut short.
    """

    max_file_bytes: int = 16 * MIB
    max_document_bytes: int = 1 * MIB
    max_yaml_nodes: int = 100_000
    max_yaml_depth: int = 100
    max_entity_bytes: int = 2 * MIB
    max_placeholder_bytes: int = 1 * MIB
    max_placeholder_bytes_per_file: int = 16 * MIB
    max_placeholder_bytes_per_chunk: int = 256 * MIB
    max_location_depth: int = 32
    max_documents_per_file: int = 50_000
    max_glob_matches: int = 10_000


DEFAULT_LIMITS = Limits()
