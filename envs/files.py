"""Files that commands of every layer write: written aside and moved into place, checked before
any work starts, and leftovers of killed writers cleaned up (the ground floor: runs, datasets,
videos, bags and reports all go through here).

Whatever is written aside is named ``.NAME.surgisim-PID-XXXX`` beside its destination ``NAME``:
the writer's process id tells a later command a leftover (its writer is gone) from a write still
in progress.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import imageio.v2 as imageio
import numpy as np

VIDEO_SUFFIXES = (".mp4",)


def free_path(path: Path) -> Path:
    """``path``, or ``stem-1.suffix``, ``stem-2.suffix``... if it exists: earlier files are kept."""
    candidate, index = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.stem}-{index}{path.suffix}")
        index += 1
    return candidate


def staging_prefix(path: Path) -> str:
    """The name prefix of what is written aside before it becomes ``path``."""
    return f".{path.name}.surgisim-{os.getpid()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(path: Path) -> list[Path]:
    """Remove what killed writers of ``path`` left beside it (files or folders whose writing
    process is gone); returns what was removed."""
    if not path.parent.is_dir():
        return []
    removed = _left_by_gone_processes(path.parent, rf"\.{re.escape(path.name)}\.surgisim-")
    for entry in removed:
        remove(entry)
    return removed


def _left_by_gone_processes(folder: Path, prefix: str) -> list[Path]:
    """What is in ``folder`` named ``PREFIX``, a process id and ``-`` (``prefix`` a regular
    expression), whose process is gone."""
    pattern = re.compile(rf"^{prefix}(\d+)-")
    return [entry for entry in folder.iterdir()
            if (match := pattern.match(entry.name)) and not _alive(int(match.group(1)))]  # fmt: skip


def process_folder(kind: str) -> tempfile.TemporaryDirectory:
    """A temporary folder for what this process generates (``surgisim-KIND-PID-XXXX`` in the
    system's temporary folder), removed when the process exits. A process killed before its exit
    leaves its folder behind (a Ray worker, a timed-out test, a forked env stopped with
    ``os._exit``), so the folders of processes that are gone are removed first."""
    prefix = f"surgisim-{kind}-"
    for entry in _left_by_gone_processes(Path(tempfile.gettempdir()), re.escape(prefix)):
        shutil.rmtree(entry, ignore_errors=True)  # another starting process may remove it first
    return tempfile.TemporaryDirectory(prefix=f"{prefix}{os.getpid()}-")


def remove(path: Path) -> None:
    """Remove a file or a folder with what it holds."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def refuse_links(paths: list[Path], folder: str) -> None:
    """A ``ValueError`` naming those of ``paths`` (the parts of a ``folder``: "run", "sweep") that
    are symbolic links: surgisim writes and removes files there, and follows no link out of it."""
    links = [path for path in paths if path.is_symlink()]
    if links:
        named = ", ".join(f"{link} -> {os.readlink(link)}" for link in links)
        raise ValueError(f"{named}: a symbolic link in a {folder} folder; surgisim writes and removes files there "
                         f"and does not follow links out of it. Put what it points to in its place (or move the "
                         f"whole {folder} folder where you need it); nothing was changed")  # fmt: skip


def check_writable(path: Path, what: str, suffixes: tuple[str, ...] = ()) -> Path:
    """``path`` made absolute, once it is known that ``what`` can be created there: its suffix is
    one of ``suffixes`` (if given) and its folder exists or can be made, and takes new files.
    A ``ValueError`` saying what is wrong otherwise. Commands call it before any work starts;
    what to do with something already at ``path`` is theirs to decide."""
    path = Path(os.path.abspath(path))
    if suffixes and path.suffix.lower() not in suffixes:
        raise ValueError(f"{path}: a {what} must end in {' or '.join(suffixes)}")
    existing = path.parent
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"cannot write the {what} {path}: {existing} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):  # a real probe: permission bits do not bind root
            pass
    except OSError as error:
        reason = f"{existing} does not take new files ({error.strerror})"
        raise ValueError(f"cannot write the {what} {path}: {reason}") from None
    return path


def unprivate(path: Path) -> None:
    """Give a file or folder that ``tempfile`` made private the permissions the umask gives any other."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` to write; it becomes ``path`` when the block ends without
    error, so a failure leaves no partial file and a reader never sees a half-written one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(path)
    handle, temporary = tempfile.mkstemp(prefix=staging_prefix(path), suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        unprivate(Path(temporary))
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write ``path`` with ``write(temporary_path)`` through ``atomic_file``."""
    with atomic_file(path) as temporary:
        write(temporary)


@contextlib.contextmanager
def video_writer(path: Path, fps: int) -> Iterator[Callable[[np.ndarray], None]]:
    """An MP4 written frame by frame (``append(rgb)``), nothing held in memory; it appears at
    ``path`` when the block ends without error, or on Ctrl-C with the frames so far (the
    ``KeyboardInterrupt`` then names it)."""
    frames = [0]
    interrupted: KeyboardInterrupt | None = None
    with atomic_file(path) as temporary:
        writer = imageio.get_writer(temporary, format="FFMPEG", fps=fps, macro_block_size=1)

        def append(frame: np.ndarray) -> None:
            writer.append_data(frame)
            frames[0] += 1

        try:
            yield append
        except KeyboardInterrupt as error:
            if not frames[0]:
                raise
            interrupted = error  # a shorter video is still a video: atomic_file keeps it
        finally:
            writer.close()
    if interrupted is not None:
        raise KeyboardInterrupt(f"{interrupted}; the video so far: {path}" if str(interrupted) else
                                f"the video so far: {path}")  # fmt: skip
