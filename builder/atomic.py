"""Writing without half-written results: stage in a sibling folder, then swap it into place.

A folder target ``NAME`` has, beside it, while a builder writes it:

* ``.NAME.lock``: a file ``flock``-ed by the one process writing ``NAME`` (its pid inside),
  deleted as the lock is let go. The kernel frees the lock when that process dies, SIGKILL
  included, so a held lock always means a live writer; a killed writer's file is simply locked
  again by the next one.
* ``.NAME.tmp-XXXXXXXX``: the staging folder, swapped with ``NAME`` in one step at the end
  (``renameat2(RENAME_EXCHANGE)`` on Linux), after which it holds the previous ``NAME`` until
  that is deleted.
* ``.NAME.old-XXXXXXXX``: only where the one-step exchange is unavailable: the previous ``NAME``
  between the two renames of the fallback swap, always complete.

Whoever takes the lock next removes the ``.tmp-`` and ``.old-`` folders a killed writer left,
after restoring ``NAME`` from an ``.old-`` folder if the kill fell between the two renames.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import stat
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from .errors import BuildError

try:
    import fcntl
except ImportError:  # not POSIX: no lock, and so no removal of folders another writer may own
    fcntl = None  # type: ignore[assignment]

_AT_FDCWD = -100
_RENAME_EXCHANGE = 1 << 1
_RANDOM = r"[a-z0-9_]{8}"  # what tempfile.mkdtemp appends to a prefix


def refuse_foreign_dir(target: Path, ours: Callable[[Path], bool], what: str) -> None:
    """Raise unless `target` is missing, empty, or passes `ours`: never replace someone's folder."""
    if target.exists() and not target.is_dir():
        raise BuildError(f"{target}: exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not ours(target):
        raise BuildError(f"{target}: refusing to replace a folder that is not {what}; choose another --out")


def lock_path(target: str | Path) -> Path:
    target = Path(target)
    return target.parent / f".{target.name}.lock"


# (lock file, thread) -> how many nested holds: a thread that holds a target's lock may stage it again.
_held: dict[tuple[str, int], int] = {}
_held_guard = threading.Lock()


@contextmanager
def target_lock(target: str | Path) -> Iterator[None]:
    """Hold the writer's lock of folder `target`, or raise BuildError at once if a live process holds it.

    The first hold in a thread also repairs what killed writers left (:func:`recover`). Nested holds
    by the same thread are free, so a caller may lock a target and then stage it.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    path = lock_path(target)
    key = (str(path.resolve()), threading.get_ident())
    with _held_guard:
        nested = key in _held
        if nested:
            _held[key] += 1
    if nested:
        try:
            yield
        finally:
            with _held_guard:
                _held[key] -= 1
        return
    if fcntl is None:
        yield
        return
    fd = _lock_file(path, target)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
        with _held_guard:
            _held[key] = 1
        try:
            recover(target)
            yield
        finally:
            with _held_guard:
                del _held[key]
            path.unlink(missing_ok=True)  # while still locked: see _lock_file
    finally:
        os.close(fd)  # releases the lock


def _lock_file(path: Path, target: Path) -> int:
    """Open and ``flock`` the lock file at `path`; BuildError naming the holder if a live process has it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_umask())  # not inherited by children (O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise BuildError(
                f"{target}: another build (pid {holder}) is writing it right now (it holds {path}); "
                "wait for it to finish, or stop it, then run this again"
            ) from None
        # The holder deletes the file as it lets go: a lock won on a deleted file guards nothing.
        mine = os.fstat(fd)
        try:
            now = os.stat(path)
        except FileNotFoundError:
            now = None
        if now is not None and (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino):
            return fd
        os.close(fd)


def leftovers(target: str | Path) -> list[Path]:
    """The ``.NAME.tmp-*`` and ``.NAME.old-*`` folders beside `target`, oldest first."""
    target = Path(target)
    pattern = re.compile(re.escape(f".{target.name}.") + f"(tmp|old)-{_RANDOM}")
    try:
        entries = list(target.parent.iterdir())
    except FileNotFoundError:
        return []
    found = []
    for path in entries:
        if pattern.fullmatch(path.name):
            try:
                info = path.lstat()
            except FileNotFoundError:  # removed by its writer meanwhile
                continue
            if stat.S_ISDIR(info.st_mode):
                found.append((info.st_mtime, path))
    return [path for _, path in sorted(found)]


def recover(target: str | Path, log: Callable[[str], None] | None = None) -> list[Path]:
    """Repair what killed writers left beside `target`; the caller must hold its lock.

    A missing `target` is restored from its newest ``.old-`` folder (a kill between the two renames
    of the fallback swap); every other leftover folder is deleted. Returns the folders deleted.
    """
    target = Path(target)
    note = log or (lambda message: print(message, file=sys.stderr, flush=True))
    found = leftovers(target)
    olds = [p for p in found if p.name.startswith(f".{target.name}.old-")]
    if olds and not os.path.lexists(target):
        os.rename(olds[-1], target)
        found.remove(olds[-1])
        note(f"restored {target} from {olds[-1].name} (a build was killed while swapping it)")
    for path in found:
        _remove_tree(path)
    if found:
        note(f"removed {len(found)} staging folder(s) that a killed build left beside {target}: {', '.join(p.name for p in found)}")
    return found


@contextmanager
def staged_dir(target: str | Path, keep_existing: bool = False) -> Iterator[Path]:
    """Yield an empty (or, with `keep_existing`, a copy of `target`) staging folder beside `target`;
    when the block ends it replaces `target` in one step, on error it is removed and `target` is
    left untouched. The target's lock is held throughout (:func:`target_lock`)."""
    target = Path(target)
    with target_lock(target):
        stage = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            os.chmod(stage, 0o777 & ~_umask())  # mkdtemp makes 0700; a served bundle must be readable
            if keep_existing and target.is_dir():
                shutil.rmtree(stage)
                # Hard links make the copy free; each rewritten file is replaced, never edited in place.
                shutil.copytree(target, stage, copy_function=_link_or_copy)
            yield stage
        except BaseException:
            _remove_tree(stage)
            raise
        swap_into_place(stage, target)


def swap_into_place(stage: Path, target: Path) -> None:
    """Put folder `stage` at `target` and delete what was there; `target` is never missing.

    With ``renameat2(RENAME_EXCHANGE)`` the two trade places in one step and the previous
    `target` is deleted from the stage path. Elsewhere it takes two renames (`target` to a
    ``.NAME.old-`` folder, `stage` to `target`); a kill between them is repaired by :func:`recover`.
    """
    if not os.path.lexists(target):
        os.rename(stage, target)
        return
    if not exchange(stage, target):
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.rmdir(old)
        os.rename(target, old)
        os.rename(stage, target)
        os.rename(old, stage)  # from here on an interrupted delete leaves a .tmp- folder, never a partial .old- one
    _remove_tree(stage)


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


_renameat2_fn: object = None


def _renameat2() -> Callable[..., int] | None:
    global _renameat2_fn
    if _renameat2_fn is None:
        fn = None
        if sys.platform.startswith("linux"):
            try:
                fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)  # glibc >= 2.28
            except OSError:
                fn = None
            if fn is not None:
                fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
                fn.restype = ctypes.c_int
        _renameat2_fn = fn or False
    return _renameat2_fn or None  # type: ignore[return-value]


def exchange(a: str | Path, b: str | Path) -> bool:
    """Swap two existing paths in one atomic step; False where the system or file system cannot."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, f"cannot exchange {a} and {b}: {os.strerror(err)}", str(a), None, str(b))


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
