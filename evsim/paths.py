"""Checks on the files a command will write or read as options, done before any simulation starts
(a typo in an output path must not cost a 20-minute evaluation)."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from .errors import OptionError


def check_output_path(path, option: str, *, suffixes: tuple | None = None, make_parents: bool = False) -> Path:
    """Refuse an output file that could not be written.

    Args:
        path: the file to write.
        option: the option that named it (``--json``), for the message.
        suffixes: accepted extensions (lower case, with the dot), or None for any.
        make_parents: the writer creates missing folders itself (figures); then only an existing
            ancestor that is not a writable folder is refused.

    Returns:
        the path.

    Raises:
        OptionError: the path is an existing folder, its folder is missing (unless
            ``make_parents``) or not a writable folder, the file exists read-only or is not a
            regular file (a device, pipe or socket), or its extension is not in ``suffixes``.
    """
    p = Path(str(path))
    if str(path) == "" or p.name in ("", ".", ".."):
        raise OptionError(f"'{path}' is not a file name", option=option)
    if suffixes is not None and p.suffix.lower() not in suffixes:
        shown = f"'{p.suffix}'" if p.suffix else "no extension"
        raise OptionError(f"{path}: {shown} is not supported (use {' or '.join(suffixes)})", option=option)
    if p.is_dir():
        raise OptionError(f"{path} is a folder, not a file", option=option)
    parent = p.parent if str(p.parent) else Path(".")
    if make_parents:
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
    if not parent.exists():
        raise OptionError(f"cannot write {path}: folder {parent} does not exist", option=option)
    if not parent.is_dir():
        raise OptionError(f"cannot write {path}: {parent} is not a folder", option=option)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OptionError(f"cannot write {path}: folder {parent} is not writable", option=option)
    if p.is_symlink() and not p.exists():  # a loop, or a link to nowhere: writing would replace the link
        try:
            p.resolve(strict=True)
        except (RuntimeError, OSError) as exc:  # (Python < 3.13 raises RuntimeError for a loop, later ELOOP)
            if isinstance(exc, RuntimeError) or exc.errno == errno.ELOOP:
                raise OptionError(f"cannot write {path}: it is a symbolic link in a loop", option=option) from None
            # else a link to a file not written yet: the writer creates its target
    if p.exists() and not p.is_file():  # a device, pipe or socket: not replaced by a regular file
        raise OptionError(f"cannot write {path}: it exists and is not a regular file", option=option)
    if p.exists() and not os.access(p, os.W_OK):
        raise OptionError(f"cannot write {path}: the file exists and is read-only", option=option)
    return p


def read_subset(spec: str, option: str = "--subset") -> list:
    """The recording paths listed by a subset file: ``FILE.json`` (a list of strings, or a dict
    of such lists), ``FILE.json:KEY`` (the list under KEY) or a text file (one path per line).

    Raises:
        OptionError: the file is missing, unreadable, not UTF-8 text, not valid JSON, or does not
            hold lists of strings.
    """
    file, _, key = str(spec).partition(":")
    p = Path(file)
    if not p.is_file():
        raise OptionError(f"{file} {'is not a file' if p.exists() else 'does not exist'}", option=option)
    try:
        text = p.read_bytes().decode("utf-8")
    except OSError as exc:
        raise OptionError(f"cannot read {file} ({exc.strerror or exc})", option=option) from None
    except UnicodeDecodeError:
        raise OptionError(f"{file} is not a text or JSON file (not UTF-8)", option=option) from None
    if "\x00" in text:
        raise OptionError(f"{file} is not a text or JSON file (binary data)", option=option)
    if not file.lower().endswith(".json"):
        if key:
            raise OptionError(f"':{key}' selects a list in a JSON file, but {file} is not .json", option=option)
        return [line.strip() for line in text.splitlines() if line.strip()]
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OptionError(f"{file} is not valid JSON (line {exc.lineno}: {exc.msg})", option=option) from None
    except RecursionError:
        raise OptionError(f"{file} is not valid JSON for a subset (nested too deeply)", option=option) from None
    if key:
        if not isinstance(doc, dict):
            raise OptionError(f"{file} holds a {type(doc).__name__}, not a dict with key '{key}'", option=option)
        if key not in doc:
            raise OptionError(f"{file} has no list '{key}' (has {', '.join(map(str, doc)) or 'nothing'})",
                              option=option)
        lists = {key: doc[key]}
    elif isinstance(doc, list):
        lists = {"": doc}
    elif isinstance(doc, dict):
        lists = doc
    else:
        raise OptionError(f"{file} holds a {type(doc).__name__}; expected a list of paths or a dict of lists",
                          option=option)
    wanted = []
    for name, items in lists.items():
        where = f" under '{name}'" if name else ""
        if not isinstance(items, list) or not all(isinstance(w, str) and "\x00" not in w for w in items):
            raise OptionError(f"{file}: expected a list of path strings{where}", option=option)
        wanted.extend(items)
    return wanted


def check_json_file(path, option: str):
    """The parsed content of a JSON file given as an option (calibration, eval results), or
    OptionError when it is missing, unreadable, not UTF-8 or not valid JSON."""
    p = Path(str(path))
    if not p.is_file():
        raise OptionError(f"{path} {'is not a file' if p.exists() else 'does not exist'}", option=option)
    try:
        return json.loads(p.read_bytes().decode("utf-8"))
    except OSError as exc:
        raise OptionError(f"cannot read {path} ({exc.strerror or exc})", option=option) from None
    except UnicodeDecodeError:
        raise OptionError(f"{path} is not a JSON file (not UTF-8 text)", option=option) from None
    except (json.JSONDecodeError, RecursionError) as exc:
        detail = f"line {exc.lineno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        raise OptionError(f"{path} is not valid JSON ({detail})", option=option) from None
    except ValueError as exc:  # an integer of thousands of digits (Python's int-string limit)
        detail = (str(exc).splitlines() or [""])[0]
        detail = detail if len(detail) <= 100 else detail[:100].rsplit(" ", 1)[0] + " ..."  # (not cut mid-word)
        raise OptionError(f"{path} cannot be read as JSON ({detail})", option=option) from None
