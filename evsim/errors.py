"""One exception hierarchy for everything a user can get wrong.

Every message names the file, node or field it is about, so that the command line can print it as
one line (``evsim: error: <message>``) and exit with code 2. Internal bugs are *not* wrapped: they
keep their traceback.
"""

from __future__ import annotations


class EvsimError(Exception):
    """Base class of all user-facing errors (bad file, bad model, bad option)."""


def _located(message: str, path, what: str | None) -> str:
    """``<path>: <what>: <message>``, leaving out the parts that are not known."""
    prefix = ": ".join(str(p) for p in (path, what) if p)
    return f"{prefix}: {message}" if prefix else message


class ModelError(EvsimError):
    """A NIR graph that evsim cannot compile: unknown node, shape mismatch, non-finite parameter.

    ``node`` names the offending node (dotted path for nodes inside subgraphs) and ``path`` the file.
    """

    def __init__(self, message: str, *, node: str | None = None, path: str | None = None):
        self.node = node
        self.path = path
        super().__init__(_located(message, path, f"node '{node}'" if node else None))


class RecordingError(EvsimError):
    """A recording that cannot be read or does not fit the model (bad file, unsorted timestamps,
    addresses outside the input shape)."""

    def __init__(self, message: str, *, path: str | None = None, field: str | None = None):
        self.path = path
        self.field = field
        super().__init__(_located(message, path, f"field '{field}'" if field else None))


class OptionError(EvsimError):
    """An option value that makes no sense (negative bin width, unknown profile, ...)."""

    def __init__(self, message: str, *, option: str | None = None):
        self.option = option
        super().__init__(f"option {option}: {message}" if option else message)


def shown(value, limit: int = 60) -> str:
    """``repr(value)`` on one short line, for a one-line message: the digits of a huge integer
    and the end of a long repr (an array, say) are left out."""
    text = " ".join(repr(value).split())
    if len(text) <= limit:
        return text
    if isinstance(value, int) and not isinstance(value, bool):
        return f"an integer of {len(str(abs(value)))} digits"
    return text[:limit - 10] + "..."


def real_option(value, option: str, *, integer: bool = False):
    """``value`` as a float (or, with ``integer``, an int), or OptionError naming ``option``:
    booleans, strings, None and other objects are not numbers (the API takes what the command
    line parses)."""
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise OptionError(f"must be a number, got {shown(value)}", option=option)
    if integer:
        if not isinstance(value, numbers.Integral) and not (value == value and abs(value) < float("inf")
                                                             and float(value).is_integer()):
            raise OptionError(f"must be an integer, got {shown(value)}", option=option)
        return int(value)
    try:
        return float(value)
    except (OverflowError, ValueError, TypeError):  # an integer beyond float's range
        raise OptionError(f"must be a finite number, got {shown(value)}", option=option) from None


def message_without(exc: BaseException, path: str) -> str:
    """The first line of ``exc``'s message without a leading ``path: `` (for a record or a list
    that names the path already), or the exception's type name when it has no message."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[len(path) + 2:] if isinstance(path, str) and text.startswith(path + ": ") else text
