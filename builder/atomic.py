"""Writing without half-written results: stage in a sibling folder, then swap it into place."""

from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import BuildError


def refuse_foreign_dir(target: Path, ours: Callable[[Path], bool], what: str) -> None:
    """Raise unless `target` is missing, empty, or passes `ours`: never replace someone's folder."""
    if target.exists() and not target.is_dir():
        raise BuildError(f"{target}: exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not ours(target):
        raise BuildError(f"{target}: refusing to replace a folder that is not {what}; choose another --out")


@contextmanager
def staged_dir(target: str | Path, keep_existing: bool = False) -> Iterator[Path]:
    """Yield an empty (or, with `keep_existing`, a copy of `target`) staging folder; on success it
    replaces `target` in two renames, on error it is removed and `target` is left untouched."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700; a served bundle must be readable
    try:
        if keep_existing and target.is_dir():
            shutil.rmtree(stage)
            # Hard links make the copy free; each rewritten file is replaced, never edited in place.
            shutil.copytree(target, stage, copy_function=_link_or_copy)
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rmdir(old)
        os.rename(target, old)
    os.rename(stage, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def replace_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file, never in place (the old file may be a hard link)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
