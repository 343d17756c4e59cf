"""Labelled folders of recordings: ``root/<label>/<recording files>`` (docs/SEMANTICS.md#formats).

A thin class layer over :func:`evsim.input.recordings.read_recording`, in the spirit of tonic's datasets:
the file list is built once, recordings are read lazily on indexing.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from ..errors import EvsimError, OptionError, RecordingError
from .recordings import SUPPORTED_EXTENSIONS, Recording, read_recording


def folder_label(name: str) -> int | None:
    """The integer a class folder's name gives, or None when the name is not an integer.

    Only ASCII digits are an integer name (``7``, ``10``, zero-padded ``07``), or ASCII digits
    after a minus sign (``-3``: an integer, but no label, so refused as one rather than taken for
    a name and numbered): Python's ``int()`` would also take ``+2``, `` 3``, ``0_4`` and other
    scripts' digits (``٣``), which are names (docs/SEMANTICS.md#formats)."""
    return int(name) if re.fullmatch(r"-?[0-9]+", name) else None


def _is_int(name: str) -> bool:
    return folder_label(name) is not None


class FolderDataset:
    """Recordings in ``root/<label>/<file>``, one sub-folder per class.

    Classes are the sub-folders that hold at least one recording; sub-folders without any (empty
    ones, ``#recycle``, ``__MACOSX``...) are ignored and listed in ``ignored_folders``, as are
    hidden ones. Labels: if every class name is an integer (ASCII digits: ``0``, ``1``, ...,
    ``10``, zero-padded ``07``; ``-3`` is a negative one, refused later as no output's label), a
    sample's label is that integer, and two folders giving the same one (``1`` and ``01``) are
    refused; if none is, labels index the names in sorted order (``cat`` → 0, ``dog`` → 1;
    ``+2``, ``0_4`` or ``٣`` are such names, not integers); a mix of both is refused (an extra
    folder would otherwise shift every label).
    ``classes`` lists the class names in label order (numeric order for integer names) and
    ``class_to_label`` maps each name to its label. Files without a supported extension (and
    hidden files) are ignored; nested folders below ``<label>/`` are not searched.

    Samples are sorted by label, then file name, so indices are deterministic; their paths start
    with ``root`` resolved (absolute, symbolic links followed).

    The folder may declare the time window of its samples once, in ``root/evsim-dataset.json``:
    ``{"time_origin": "zero", "duration_us": 300000}`` (either key; docs/SEMANTICS.md#time-window).
    It is read into ``window`` (a dict, empty when there is no such file); command-line options
    win over it.

    Args:
        root: the dataset folder.
        extensions: only take files with these extensions (e.g. ``(".bin",)``); default: every
            extension evsim reads (:data:`evsim.input.recordings.SUPPORTED_EXTENSIONS`).
        format: passed to :func:`~evsim.input.recordings.read_recording` (default: from the extension).
        sort: sort each recording's events by timestamp instead of rejecting unsorted ones.

    Raises:
        RecordingError: ``root`` is empty (``''``), missing, not a folder, holds no recordings,
            mixes integer and other class names, or has two class folders giving the same integer.
        OptionError: an extension evsim cannot read.
    """

    def __init__(self, root, *, extensions=None, format: str | None = None, sort: bool = False):
        if not isinstance(root, (str, os.PathLike)):
            raise OptionError(f"the dataset folder must be a path, got {type(root).__name__}", option="root")
        self.format = format
        self.sort = sort
        self.extensions = _normalise_extensions(extensions)
        source = str(root)
        if isinstance(root, str) and not root:  # Path('') is '.': the working directory, never meant
            raise RecordingError("the dataset folder is an empty path ('')")
        # the sample paths start with the folder's resolved path: the same data given as a relative
        # path or through a symbolic link is the same data (--resume, `evsim compare`)
        self.root = Path(root).resolve()
        if not self.root.exists():
            raise RecordingError("dataset folder does not exist", path=source)
        if not self.root.is_dir():
            raise RecordingError("dataset root is not a folder (expected root/<label>/<files>)", path=source)

        try:
            names, samples = self._scan()
        except OSError as exc:  # a folder that cannot be listed (permissions, vanished)
            where = exc.filename or source
            raise RecordingError(f"cannot list {where} ({exc.strerror or exc})", path=source) from None
        if not samples:
            raise RecordingError(
                "no recordings found: expected root/<label>/<file> with extensions "
                + ", ".join(self.extensions),
                path=source,
            )
        #: list of (path, label), sorted by label then file name.
        self.samples: list[tuple[str, int]] = samples
        #: the sample window the folder declares ({} = none): time_origin, duration_us
        self.window: dict = read_declared_window(self.root)

    def _scan(self):
        folders = sorted(d for d in self.root.iterdir() if d.is_dir() and not d.name.startswith("."))
        files = {d.name: [f for f in d.iterdir()
                          if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in self.extensions]
                 for d in folders}
        names = [name for name in files if files[name]]
        #: sub-folders holding no recording, not classes
        self.ignored_folders: list[str] = [name for name in files if not files[name]]
        integer = sorted((n for n in names if _is_int(n)), key=int)  # (ties in name order)
        first = {}  # label -> the folder giving it (zero-padded names can give a label twice)
        for n in integer:
            if int(n) in first:
                raise RecordingError(
                    f"class folders '{first[int(n)]}' and '{n}' both give label {int(n)}: merge or rename "
                    "one of them", path=str(self.root))
            first[int(n)] = n
        if integer and len(integer) < len(names):
            others = [n for n in names if not _is_int(n)]
            raise RecordingError(
                f"class folders mix integer names ({', '.join(integer[:5])}{', ...' if len(integer) > 5 else ''}) "
                f"and other names ({', '.join(repr(n) for n in others[:5])}): integer names are labels, the others "
                "would have none; move or rename them", path=str(self.root))
        if integer:
            names.sort(key=int)
            self.class_to_label = {n: int(n) for n in names}
        else:
            self.class_to_label = {n: i for i, n in enumerate(names)}
        self.classes: list[str] = names

        samples = [(str(f), self.class_to_label[name]) for name in names for f in files[name]]
        samples.sort(key=lambda s: (s[1], Path(s[0]).name))
        return names, samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Recording:
        """Read sample ``index`` (a :class:`Recording` with ``label`` set)."""
        path, label = self.samples[index]
        rec = read_recording(path, format=self.format, sort=self.sort)
        rec.label = label
        return rec

    @property
    def labels(self) -> list[int]:
        """The label of every sample, in sample order."""
        return [label for _, label in self.samples]

    def __repr__(self) -> str:
        return f"FolderDataset({str(self.root)!r}, {len(self)} samples, {len(self.classes)} classes)"


def _normalise_extensions(extensions) -> tuple[str, ...]:
    if extensions is None:
        return SUPPORTED_EXTENSIONS
    if isinstance(extensions, str):
        extensions = (extensions,)
    result = []
    for ext in extensions:
        ext = str(ext).lower()
        ext = ext if ext.startswith(".") else "." + ext
        if ext not in SUPPORTED_EXTENSIONS:
            raise OptionError(
                f"unsupported recording extension '{ext}' (supported: {', '.join(SUPPORTED_EXTENSIONS)})",
                option="extensions",
            )
        result.append(ext)
    return tuple(result)


DATASET_FILE = "evsim-dataset.json"


def read_declared_window(root: Path) -> dict:
    """The time window ``root/evsim-dataset.json`` declares ({} when there is no such file)."""
    from .window import SampleWindow

    path = Path(root) / DATASET_FILE
    if not path.is_file():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordingError(f"cannot read the dataset description ({exc})", path=str(path)) from None
    if not isinstance(doc, dict):
        raise RecordingError("the dataset description must be a JSON object", path=str(path))
    unknown = sorted(set(doc) - {"time_origin", "duration_us", "description"})
    if unknown:
        raise RecordingError(f"unknown key(s) {', '.join(unknown)} (known: time_origin, duration_us, description)",
                             path=str(path))
    window = {k: doc[k] for k in ("time_origin", "duration_us") if k in doc}
    try:
        SampleWindow(**window)
    except EvsimError as exc:
        raise RecordingError(f"{exc}", path=str(path)) from None
    return window
