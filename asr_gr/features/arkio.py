"""Kaldi ark/scp writing with atomic renames, and feats.scp entries whose paths are resolved.

An ark is written under a temporary name and renamed; only then is its scp (the file that points
into it) renamed into place, so no scp ever points into a half-written ark. scp entries name the
ark by its absolute final path.
"""

from __future__ import annotations

from pathlib import Path

import kaldiio
import numpy as np

from asr_gr.data.kaldi_dir import split_ark_entry
from asr_gr.utils import atomic_path

class ArkWriter:
    """Write matrices to an open binary file, remembering each one's ``ark:offset`` for the scp."""

    def __init__(self, fd, final_path):
        self.fd = fd
        self.final_path = str(Path(final_path).resolve())
        self.entries: list[tuple[str, str]] = []

    def write(self, key: str, mat: np.ndarray) -> None:
        self.fd.write((key + " ").encode("utf-8"))
        offset = self.fd.tell()
        kaldiio.matio.write_array(self.fd, mat)
        self.entries.append((key, f"{self.final_path}:{offset}"))


def write_ark_scp(ark_path, scp_path, items) -> list[tuple[str, str]]:
    """Write ``(key, matrix)`` items to ``ark_path`` and their entries to ``scp_path``, atomically.

    The ark is renamed into place first; the scp last. Returns the scp entries.
    """
    ark_path = Path(ark_path).resolve()
    with atomic_path(ark_path, suffix=".ark") as tmp_ark:
        with open(tmp_ark, "wb") as fd:
            w = ArkWriter(fd, ark_path)
            for key, mat in items:
                w.write(key, mat)
    write_scp(scp_path, w.entries)
    return w.entries


def write_scp(scp_path, entries) -> None:
    with atomic_path(scp_path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            for key, value in entries:
                f.write(f"{key} {value}\n")


class PathResolver:
    """Resolve the file part of scp entries written with relative paths (Kaldi writes them relative
    to the directory the recipe ran in). ``roots`` are tried in order; the first one under which the
    file exists wins. Pipes (``cmd |``) are returned unchanged."""

    def __init__(self, roots):
        self.roots = [Path(r) for r in roots]
        self._cache: dict[str, str | None] = {}

    def file(self, path: str) -> str | None:
        if path not in self._cache:
            p = Path(path)
            if p.is_absolute():
                self._cache[path] = str(p) if p.exists() else None
            else:
                found = next((r / p for r in self.roots if (r / p).exists()), None)
                self._cache[path] = str(found.resolve()) if found is not None else None
        return self._cache[path]

    def entry(self, value: str) -> tuple[str, str | None]:
        """(resolved entry, None) or (original entry, reason it cannot be resolved)."""
        value = value.strip()
        if value.endswith("|"):
            return value, None
        parts = split_ark_entry(value)
        path, rest = parts if parts is not None else (value, "")
        found = self.file(path)
        if found is None:
            where = "" if Path(path).is_absolute() else \
                f" (relative paths are looked up under {', '.join(str(r) for r in self.roots)})"
            return value, f"file '{path}' does not exist{where}"
        return found + rest, None
