"""Reading one untrusted file: regular files only, never more than a byte limit, never blocking.

A path in a catalog repository can name anything: a FIFO called `catalog-info.yaml` (an open
for reading waits for a writer forever), `/dev/zero` behind a symlink (a read never ends), a
directory, a socket. `read_regular_file` opens without blocking (`O_NONBLOCK`), checks what it
opened with `fstat` on the open descriptor (so a file swapped between a check and the open is
still caught), refuses anything that is not a regular file, and reads at most `max_bytes + 1`
bytes (so a file that grows after the size check cannot be read past the limit either).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


class FileProblem(OSError):
    """Why a file was not read; `rule` names the check (`notRegularFile`, `maxFileBytes`, ...)."""

    def __init__(self, reason: str, rule: str, size: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.rule = rule
        self.size = size


def file_kind(mode: int) -> str:
    """A readable name for what a non-regular file is."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    return "not a regular file"


def read_regular_file(path: str | Path, max_bytes: int, what: str = "the file") -> bytes:
    """The bytes of a regular file of at most `max_bytes`; raises `FileProblem` otherwise.

    `what` starts the reason ("the file", "$text placeholder target './x'"), so callers get a
    sentence they can put in a rejection as is. `FileNotFoundError` is raised unchanged.
    """
    return read_regular(path, max_bytes, what)[0]


def read_regular(path: str | Path, max_bytes: int, what: str = "the file") -> tuple[bytes, os.stat_result]:
    """`read_regular_file` plus the `fstat` of what was read (size and mtime identify the version)."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise FileProblem(f"{what} cannot be read: {error.strerror or error}", "unreadable") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileProblem(
                f"{what} is {file_kind(info.st_mode)}, not a regular file; only regular files are read",
                "notRegularFile",
            )
        if info.st_size > max_bytes:
            raise FileProblem(
                f"{what} is {info.st_size:,} bytes, over the limit of {max_bytes:,} bytes", "tooLarge", info.st_size
            )
        chunks: list[bytes] = []
        remaining = max_bytes + 1
        while remaining > 0:
            try:
                chunk = os.read(fd, min(remaining, 1 << 20))
            except OSError as error:
                raise FileProblem(f"{what} cannot be read: {error.strerror or error}", "unreadable") from None
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise FileProblem(
                f"{what} grew to more than {max_bytes:,} bytes while it was read, over the limit",
                "tooLarge",
                len(data),
            )
        return data, info
    finally:
        os.close(fd)
