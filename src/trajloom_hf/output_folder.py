"""Writing a command's files into a folder the user owns, without touching anything else in it.

A command may be pointed at any folder (``--out .`` included). It replaces only the files it wrote itself, each
atomically, and never deletes or rewrites anything else, nor changes the folder's permissions:

1. :meth:`OutputFolder.check` (before any work): every path the command may write is either absent or listed in
   the manifest a previous run of the same command left (a JSON file whose ``written_by`` names the command and
   whose ``files`` lists what it wrote); anything else is a conflict and nothing is done.
2. The command writes its files into :meth:`OutputFolder.staging`, a hidden temporary folder inside the output
   folder (same file system, so the final move is an atomic ``os.replace``).
3. :meth:`OutputFolder.commit` first records the union of the old and the new files in the manifest (so an
   interrupted commit never leaves files the next run would refuse as foreign), moves each staged file onto its
   place with ``os.replace``, writes the final manifest last, then removes the files of the previous run that
   this run did not write again (only those the old manifest listed, only plain files, only inside the folder);
   with ``keep_previous`` they stay, listed (a command that adds to its folder one piece at a time).

Files keep the ordinary permissions of ``open(path, "w")`` (``0o666`` minus the umask); a folder the command
creates gets the ordinary ``0o777`` minus the umask.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator, List, Set, Union

from .video_io import _FILE_MODE

PathLike = Union[str, os.PathLike]


def _is_safe_relative(name: str) -> bool:
    """A manifest entry must name a path inside the folder: relative, no ``..``, no empty parts."""
    p = PurePosixPath(name)
    return (bool(name) and not p.is_absolute() and "\\" not in name
            and all(part not in ("", ".", "..") for part in p.parts))


class OutputFolder:
    """The output folder of one command (see the module docstring).

    Args:
        folder: the user's ``--out`` folder (may not exist yet).
        manifest: name of the manifest file inside ``folder`` (e.g. ``"meta.json"``); it is written by
            :meth:`commit` from the ``meta`` dict given there, plus ``written_by`` and ``files``.
        owner: the command's name, stored as ``written_by`` (e.g. ``"trajloom forecast"``).
        arg_name: how the folder is called in error messages (e.g. ``"--out"``).
    """

    def __init__(self, folder: PathLike, manifest: str, owner: str, arg_name: str = "--out"):
        if not _is_safe_relative(manifest):
            raise ValueError(f"`manifest` must be a relative file name, got {manifest!r}")
        self.folder = Path(folder).absolute()
        self.manifest, self.owner, self.arg_name = manifest, owner, arg_name

    # -- what a previous run wrote --------------------------------------------------------------------------------
    def previous_manifest(self) -> dict:
        """The manifest a previous run of ``owner`` left (its ``meta`` plus ``written_by`` and ``files``); empty when
        there is none, it is unreadable or another command wrote it."""
        path = self.folder / self.manifest
        if not path.is_file() or path.is_symlink():
            return {}
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("written_by") != self.owner or not isinstance(data.get("files"), list):
            return {}
        return data

    def previous_files(self) -> Set[str]:
        """The files a previous run of ``owner`` listed in the manifest (empty when there is none or it is foreign)."""
        files = self.previous_manifest().get("files", [])
        return {f for f in files if isinstance(f, str) and _is_safe_relative(f)}

    def check(self, candidates: Iterable[str]) -> None:
        """Refuse (``ValueError``) when writing ``candidates`` (relative paths; the manifest is added) would replace
        anything a previous run of ``owner`` did not write, or when the folder is not a folder."""
        where = f"`{self.arg_name}` {str(self.folder)!r}"
        if self.folder.exists() and not self.folder.is_dir():
            raise ValueError(f"{where} exists and is not a folder")
        if not self.folder.exists():
            return
        own = self.previous_files()
        if own:
            own.add(self.manifest)
        conflicts = []
        for name in sorted(set(candidates) | {self.manifest}):
            if not _is_safe_relative(name):
                raise ValueError(f"output name {name!r} must be a relative path inside {where}")
            path = self.folder / name
            for parent in list(PurePosixPath(name).parents)[:-1]:  # e.g. "official" for "official/meta.json"
                p = self.folder / parent
                if p.is_symlink() or (p.exists() and not p.is_dir()):
                    conflicts.append(str(parent))
            if (path.exists() or path.is_symlink()) and (name not in own or path.is_symlink() or not path.is_file()):
                conflicts.append(name)
        if conflicts:
            raise ValueError(f"{where} already holds {', '.join(sorted(set(conflicts)))}, which this command did not "
                             f"write (no `{self.manifest}` of a previous `{self.owner}` lists them); move them away or "
                             f"choose another folder: nothing else in the folder is touched")

    # -- writing ----------------------------------------------------------------------------------------------------
    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A hidden temporary folder inside the output folder to write into; removed when the block ends. The output
        folder is created (ordinary permissions) when missing, and removed again on error if it is still empty."""
        created = not self.folder.exists()
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{self.owner.replace(' ', '-')}.", dir=self.folder))
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if created:
                try:
                    self.folder.rmdir()  # only if empty: never delete what we did not write
                except OSError:
                    pass
            raise
        shutil.rmtree(tmp, ignore_errors=True)

    def commit(self, staged: Path, meta: dict, keep_previous: bool = False) -> List[str]:
        """Move every file under ``staged`` onto its place in the folder (atomically each), write the manifest (``meta``
        plus ``written_by`` and ``files``) last, and remove what the previous run wrote that this one did not, or, with
        ``keep_previous``, keep it listed (a command that adds to its folder piece by piece, e.g. one clip at a time).
        Returns the relative paths written (manifest included)."""
        staged = Path(staged)
        files = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())
        if self.manifest in files:
            raise ValueError(f"the staged files must not include the manifest {self.manifest!r}: `commit` writes it")
        previous = self.previous_files()
        written = files + [self.manifest]
        meta = dict(meta, written_by=self.owner)
        # 1. claim every file before moving anything: an interrupted commit leaves only files the manifest lists
        self._write_manifest(dict(meta, files=sorted(set(written) | previous)), staged)
        # 2. move the files, each with one atomic rename
        for name in files:
            dst = self.folder / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(staged / name, _FILE_MODE)
            os.replace(staged / name, dst)
        # 3. the final manifest, then the previous run's files this run did not write again
        if keep_previous:
            self._write_manifest(dict(meta, files=sorted(set(written) | previous)), staged)
            return written
        self._write_manifest(dict(meta, files=written), staged)
        for name in sorted(previous - set(written)):
            path = self.folder / name
            if path.is_file() and not path.is_symlink():
                path.unlink()
            for parent in list(PurePosixPath(name).parents)[:-1]:  # folders of our own files, only when left empty
                try:
                    (self.folder / parent).rmdir()
                except OSError:
                    break
        return written

    def _write_manifest(self, data: dict, staged: Path) -> None:
        tmp = staged / f".{self.manifest}.tmp"
        tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, self.folder / self.manifest)

