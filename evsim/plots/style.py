"""What every figure shares: paper sizes, fonts, formats, writing, and the colour of a configuration.

* Sizes: :data:`SIZES` — one column (3.5 in) and two columns (7.2 in) of a journal page.
* Formats by extension: ``.png`` (300 dpi), ``.pdf``, ``.svg``; the vector formats carry no
  creation date, so the same figure gives the same bytes.
* Colours: :func:`config_colour` derives the colour of a result from its configuration (mode,
  cutoff kind, profile, cutoff parameters, clock bin width), never from the order of the files,
  so the same configuration has the same colour in every figure.
"""

from __future__ import annotations

import hashlib
import math
import sys
from contextlib import contextmanager
from pathlib import Path

import matplotlib
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure

from ..errors import EvsimError, OptionError

__all__ = ["FORMATS", "SIZES", "check_figure_path", "save_figure", "figure_width", "config_colour", "config_marker",
           "paper_style"]

#: Supported figure formats (by file extension) and their savefig options.
FORMATS = {
    ".png": {"format": "png", "dpi": 300, "metadata": {"Software": None}},
    ".pdf": {"format": "pdf", "metadata": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": None}},
    ".svg": {"format": "svg", "metadata": {"Date": None, "Creator": None}},
}

#: Figure widths in inches: one column and two columns of a journal page.
SIZES = {"one-column": 3.5, "two-column": 7.2}

#: Font sizes fit for print at 3.5 / 7.2 in (7–8 pt).
PAPER_RC = {
    "font.size": 7.5, "axes.titlesize": 8, "axes.labelsize": 7.5, "xtick.labelsize": 7, "ytick.labelsize": 7,
    "legend.fontsize": 7, "figure.titlesize": 8.5, "axes.linewidth": 0.6, "xtick.major.width": 0.6,
    "ytick.major.width": 0.6, "xtick.minor.width": 0.4, "ytick.minor.width": 0.4, "lines.linewidth": 1.2,
    "lines.markersize": 4.5, "grid.linewidth": 0.4, "pdf.fonttype": 42, "svg.fonttype": "none",
    "svg.hashsalt": "evsim", "path.simplify": False,
    # every text is plain: a title or a name from a document with "$" in it is not TeX to parse
    "text.parse_math": False,
}

# Okabe–Ito colours (distinguishable with the common colour-vision deficiencies)
_BLUE, _VERMILLION, _GREEN, _PURPLE, _ORANGE, _SKY, _BLACK, _YELLOW = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")

#: Base colour per family of configurations: (mode, cutoff kind).
FAMILY_COLOURS = {
    ("event", "none"): _BLUE,
    ("event", "calibrated-table"): _VERMILLION,
    ("event", "calibrated-one"): _GREEN,
    ("event", "threshold"): _PURPLE,
    ("event", "conf"): _ORANGE,
    ("event", "limit"): _YELLOW,
    ("clock", "none"): _BLACK,
    ("clock", "cutoff"): _SKY,
}
FAMILY_MARKERS = {
    ("event", "none"): "o", ("event", "calibrated-table"): "*", ("event", "calibrated-one"): "D",
    ("event", "threshold"): "P", ("event", "conf"): "X", ("event", "limit"): "v",
    ("clock", "none"): "s", ("clock", "cutoff"): "p",
}


@contextmanager
def paper_style():
    """Matplotlib settings for print-sized figures (used while a figure is built and written)."""
    with matplotlib.rc_context(PAPER_RC):
        yield


def figure_width(size) -> float:
    """Width in inches of ``size``: "one-column", "two-column" or a number of inches."""
    if isinstance(size, str):
        if size in SIZES:
            return SIZES[size]
        try:
            size = float(size)
        except ValueError:
            raise OptionError(f"must be one-column, two-column or a width in inches, got {size!r}",
                              option="--size") from None
    size = float(size)
    if not 1.0 <= size <= 20.0:
        raise OptionError(f"a width of {size:g} in is not a figure width (1–20 in)", option="--size")
    return size


def check_figure_path(path) -> str:
    """The format of ``path`` from its extension ("png", "pdf" or "svg"); OptionError otherwise."""
    ext = Path(str(path)).suffix.lower()
    if ext not in FORMATS:
        shown = f"'{ext}'" if ext else "no extension"
        raise OptionError(f"cannot write figure {path}: {shown} is not a supported format (use .pdf, .svg or .png)")
    return FORMATS[ext]["format"]


def save_figure(fig: Figure, path) -> Path:
    """Write ``fig`` to ``path`` in the format of its extension (.png at 300 dpi, .pdf, .svg),
    creating the parent folder, and close it. Returns the path written."""
    check_figure_path(path)
    path = Path(str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, **FORMATS[path.suffix.lower()])
    except OSError as exc:
        raise EvsimError(f"cannot write {path} ({exc.strerror or exc})") from None
    finally:
        pyplot = sys.modules.get("matplotlib.pyplot")
        if pyplot is not None:  # only figures made through pyplot are registered there
            pyplot.close(fig)
    return path


def new_figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _lighten(colour: str, amount: float) -> str:
    """Mix ``colour`` with white (amount 0: unchanged, 1: white)."""
    r, g, b = to_rgb(colour)
    return to_hex((r + (1 - r) * amount, g + (1 - g) * amount, b + (1 - b) * amount))


def _darken(colour: str, amount: float) -> str:
    """Mix ``colour`` with black (amount 0: unchanged, 1: black)."""
    r, g, b = to_rgb(colour)
    return to_hex((r * (1 - amount), g * (1 - amount), b * (1 - amount)))


#: Shade of a profile within its family (0: the pure hue; > 0 lighter).
PROFILE_SHADES = {None: 0.0, "speck": 0.0, "nir": 0.18, "norse": 0.3, "sinabs": 0.42, "snntorch": 0.55}


def _parameter_offset(parameters: str) -> float:
    """A stable shade offset from the cutoff parameters: 0 (none given), else one of five steps
    from −0.35 (darker) to +0.35 (lighter) by a hash of their text (the same on every machine)."""
    if not parameters:
        return 0.0
    return (-0.35, -0.17, 0.0, 0.17, 0.35)[int(hashlib.sha256(parameters.encode()).hexdigest(), 16) % 5]


def _threshold_offset(threshold: float) -> float:
    """Shade offset of a top-k threshold (mean of a calibrated table): high thresholds (cautious,
    late decisions) dark, low ones light; log scale over 6–80 output units (spike counts)."""
    x = min(1.0, max(0.0, (math.log10(max(threshold, 1e-9)) - 0.8) / 1.1))
    return 0.45 - 0.9 * x


def config_colour(family: tuple, profile: str | None = None, parameters: str = "", bin_us: float | None = None,
                  n_bins: int | None = None, threshold: float | None = None) -> str:
    """The colour of a configuration, from the configuration alone.

    The family (mode, cutoff kind) gives the hue (:data:`FAMILY_COLOURS`). Within a family the
    clock bin width gives the shade (fine bins dark, coarse bins light, one bin per recording
    lightest); for event-driven runs the profile gives it (:data:`PROFILE_SHADES`), shifted
    darker or lighter by the top-k threshold (``threshold``: β, or the mean of a calibrated
    table; higher is darker) or else by a hash of the cutoff parameters, so that two
    calibrations differ.
    """
    family = tuple(family)
    base = FAMILY_COLOURS.get(family, "#7f7f7f")
    if family[0] == "clock":
        if bin_us is None and n_bins is not None:
            return _lighten(base, 0.72 if n_bins == 1 else 0.55)
        if bin_us is not None and bin_us > 0:
            # 0.1 ms → 0, 100 ms → 0.6 (log scale)
            return _lighten(base, min(0.62, max(0.0, 0.2 * (math.log10(bin_us) - 2.0))))
        return base
    offset = _threshold_offset(threshold) if threshold is not None else _parameter_offset(parameters)
    amount = PROFILE_SHADES.get(profile, 0.25) + offset
    return _lighten(base, amount) if amount >= 0 else _darken(base, -amount)


def config_marker(family: tuple) -> str:
    return FAMILY_MARKERS.get(tuple(family), "o")
