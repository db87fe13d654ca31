"""Atomic file system changes: nothing half-written is ever left under a final name.

Files are written under a temporary name and renamed (:func:`atomic_path`); folders are swapped in
one step where the system can (:func:`exchange_paths`); a lock file keeps two writers of one path
apart (:func:`exclusive_lock`)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

if sys.platform != "win32":  # exclusive_lock's flock (POSIX only; Windows has no fcntl)
    import fcntl


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The temporary file keeps the final suffixes (``.nii.gz``, ``.pt`` ...) so that
    libraries choosing a format from the file name still do the right thing. On an
    exception the temporary file is removed and ``path`` is untouched.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "a.npy") as tmp:
    ...     np.save(tmp, np.arange(3))
    >>> np.load(d / "a.npy").tolist()
    [0, 1, 2]
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(final.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".part{suffix}", dir=final.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_name, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def exchange_paths(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Swap two existing paths in one atomic step; False (nothing done) where the system cannot.

    Linux ``renameat2(..., RENAME_EXCHANGE)`` through libc: at every instant each name holds either
    its old or its new content, so a folder replaced this way is never missing. Other systems,
    an old libc or a file system without the call give False, and the caller must fall back.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        func = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    if func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


class LockBusyError(OSError):
    """Another process holds the lock file (see :func:`exclusive_lock`)."""


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Hold an exclusive ``fcntl.flock`` on the file ``path`` (made if absent) while the block runs.

    The operating system releases the lock when its holder exits or is killed, so a lock left by a
    dead process never blocks. The file is removed on release, and a lock taken on a file that was
    removed meanwhile is taken again, so that two holders never hold two different files.

    Raises
    ------
    LockBusyError
        Another open lock on the file (another process, or another block in this one).
    """
    lock = Path(path)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            raise LockBusyError(err.errno, f"{lock} is locked by another process", str(lock)) from None
        try:
            now = os.stat(lock)
        except FileNotFoundError:
            now = None
        held = os.fstat(fd)
        if now is not None and (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino):
            break
        os.close(fd)  # the file was removed by its previous holder after we opened it: take the new one
    try:
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)
