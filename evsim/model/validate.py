"""Checks on a NIR graph's parameters and sizes, done before anything is allocated.

Three stages, each raising :class:`~evsim.errors.ModelError` naming the node and attribute:

* :func:`check_stored_sizes` walks a NIR/HDF5 file's datasets *before* they are read (a compressed
  dataset can declare billions of elements in a few bytes);
* :func:`check_node` checks every parameter's dtype (a real number: not complex, text or an
  object) and value domain (finite; τ > 0; delay ≥ 0; kernel ≥ 1, stride ≥ 1, padding ≥ 0,
  dilation ≥ 1, groups ≥ 1; shapes positive integers);
* :func:`check_sizes` bounds every inferred tensor and the total neuron count by
  :data:`MAX_ELEMENTS`, stating the memory the engine would need.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..errors import ModelError

#: Largest number of elements evsim accepts in one tensor (a node's input or output, a stored
#: parameter array) and in all neuron populations together: 2**26 = 67,108,864.
MAX_ELEMENTS = 2**26

#: Engine state per neuron at float64 (v, isyn, t_last, refr_until, sched_time, sched_version,
#: trace flag, input map): the basis of the memory estimate in the messages.
BYTES_PER_NEURON = 56

#: Largest magnitude of any parameter: far beyond trained models, and small enough that weights
#: stored in float32 (the default precision) and their sums over millions of spikes stay finite.
MAX_PARAMETER_MAGNITUDE = 1e30

#: Fields of NIR nodes that are not numeric parameters.
_NOT_PARAMETERS = ("input_type", "output_type", "metadata")
#: the leaky neurons' parameters that may hold +inf: "no decay", as lava_to_nir.py writes slayer's
#: decay 0 (τ = dt/0, r = τ/dt, w_in = τ_syn/dt); the profile decides what it means
#: (evsim.model.profiles.neuron_model: only lava-dl reads it)
MAY_BE_INFINITE = {"LI": ("tau", "r"), "LIF": ("tau", "r"),
                   "CubaLI": ("tau_mem", "tau_syn", "r", "w_in"), "CubaLIF": ("tau_mem", "tau_syn", "r", "w_in")}

_KIND_NAMES = {"c": "complex", "U": "text", "S": "bytes", "O": "Python objects", "M": "dates", "m": "time deltas",
               "V": "raw records"}


def _gib(n_bytes: float) -> str:
    gib = n_bytes / 2**30
    return f"{gib:,.1f} GiB" if gib < 1e6 else f"{gib:.2e} GiB"


# --------------------------------------------------------------------------------------------
# Stored sizes (before reading the file's arrays)
# --------------------------------------------------------------------------------------------


def check_stored_sizes(h5file, path: str) -> None:
    """Refuse any dataset of a NIR/HDF5 file holding more than :data:`MAX_ELEMENTS` elements,
    before it is read into memory. The node is named from the dataset path
    (``node/nodes/fc1/weight`` -> node 'fc1', attribute 'weight')."""
    import h5py

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.size is not None and obj.size > MAX_ELEMENTS:
            parts = [p for p in name.split("/") if p not in ("node", "nodes")]
            node = ".".join(parts[:-1]) or "<root>"
            raise ModelError(
                f"parameter '{parts[-1] if parts else name}' holds {obj.size:,} elements "
                f"(shape {obj.shape}, {_gib(obj.size * obj.dtype.itemsize)}), above evsim's limit of "
                f"{MAX_ELEMENTS:,} elements per array",
                node=node,
                path=path,
            )

    h5file.visititems(visit)


# --------------------------------------------------------------------------------------------
# One node: dtypes and value domains
# --------------------------------------------------------------------------------------------


def check_node_dict(d: dict, kind: str, name: str, path: str | None) -> None:
    """:func:`check_node` on a node as stored in a file (the dict nir builds nodes from), so that
    a bad parameter is named before nir's constructors trip over it."""
    fields = {k: v for k, v in d.items() if k not in ("type", "metadata")}
    if kind in ("Input", "Output"):
        shape = fields.pop("shape", None)
        if kind == "Input":
            _check_shape(shape, "shape", name, path)
        elif shape is not None:
            _check_real(shape, "shape", name, path)
        return
    check_node(_Fields(fields), kind, name, path)
    if kind in _NEURON_FIELDS:  # nir's constructors insist on one shape for all of them
        shapes = {k: np.shape(v) for k, v in fields.items() if k in _NEURON_FIELDS[kind] and np.size(v) > 1}
        if len(set(shapes.values())) > 1:
            listed = ", ".join(f"{k} {v}" for k, v in sorted(shapes.items()))
            raise ModelError(f"neuron parameters differ in shape ({listed})", node=name, path=path)


_NEURON_FIELDS = {
    "I": ("r",), "IF": ("r", "v_threshold", "v_reset"), "LI": ("tau", "r", "v_leak"),
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"), "CubaLI": ("tau_mem", "tau_syn", "r", "v_leak", "w_in"),
    "CubaLIF": ("tau_mem", "tau_syn", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
}


class _Fields:
    """Attribute access to a stored node's fields (missing ones read as None)."""

    def __init__(self, fields: dict):
        self.__dict__.update(fields)

    def __getattr__(self, attr):
        return None


def check_node(node, kind: str, name: str, path: str | None) -> None:
    """Dtype and value domain of every parameter of one (flattened) NIR node, then the checks
    its type adds (:data:`evsim.model.nodes.NODE_TYPES`)."""
    from .nodes import NODE_TYPES  # (nodes imports this module's helpers)

    node_type = NODE_TYPES.get(kind)
    if node_type is not None and node_type.role == "passthrough":
        return
    text_padding = node_type is not None and node_type.text_padding
    for attr, value in vars(node).items():
        if attr in _NOT_PARAMETERS or value is None:
            continue
        if attr == "padding" and text_padding and _is_text(value):
            continue  # 'same' / 'valid', checked with the geometry
        _check_real(value, attr, name, path, plus_inf=attr in MAY_BE_INFINITE.get(kind, ()))
    if node_type is None:
        return
    for attr in node_type.positive:
        value = getattr(node, attr, None)
        if value is not None and np.any(np.asarray(value, dtype=np.float64) <= 0):
            bad = np.asarray(value, dtype=np.float64)
            raise ModelError(f"parameter '{attr}' must be > 0 (time constant), got min {bad.min():g}",
                             node=name, path=path)
    if node_type.check is not None:
        node_type.check(kind, node, name, path)


def _is_text(value) -> bool:
    if isinstance(value, (str, bytes)):
        return True
    return isinstance(value, np.ndarray) and value.dtype.kind in "US" or (
        isinstance(value, np.ndarray) and value.dtype.kind == "O" and value.size > 0
        and all(isinstance(v, (str, bytes)) for v in value.ravel()))


def _check_real(value, attr: str, name: str, path, plus_inf: bool = False) -> None:
    """A parameter must be a real, finite number or array of them (booleans and integers too);
    ``plus_inf``: +inf is taken too (a time constant's "no decay", :data:`MAY_BE_INFINITE`)."""
    if isinstance(value, bool) or isinstance(value, numbers.Integral):
        return
    if isinstance(value, numbers.Real):
        if plus_inf and float(value) == math.inf:
            return
        if not math.isfinite(float(value)):
            raise ModelError(f"parameter '{attr}' is not finite ({value!r})", node=name, path=path)
        if abs(float(value)) > MAX_PARAMETER_MAGNITUDE:
            raise ModelError(f"parameter '{attr}' = {value!r} is beyond evsim's limit of "
                             f"{MAX_PARAMETER_MAGNITUDE:g} in magnitude", node=name, path=path)
        return
    if isinstance(value, numbers.Complex):
        raise ModelError(f"parameter '{attr}' is complex ({value!r}); parameters must be real",
                         node=name, path=path)
    try:
        arr = np.asarray(value)
    except Exception:  # ragged nested lists and other objects numpy cannot hold
        raise ModelError(f"parameter '{attr}' is not a number or array ({type(value).__name__})",
                         node=name, path=path) from None
    kind = arr.dtype.kind
    if kind not in "biuf":
        what = _KIND_NAMES.get(kind, str(arr.dtype))
        raise ModelError(f"parameter '{attr}' has dtype {arr.dtype} ({what}); parameters must be real numbers",
                         node=name, path=path)
    if kind == "f" and plus_inf:
        arr = arr[arr != np.inf]  # the profile decides what +inf means
    if kind == "f" and not np.all(np.isfinite(arr)):
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        raise ModelError(f"parameter '{attr}' has {bad} non-finite value(s)", node=name, path=path)
    if kind in "iuf" and arr.size:
        # the extremes compared as Python floats (float64): comparing a float16 array with 1e30 casts
        # 1e30 to float16 (inf) and makes numpy warn about the overflow
        high, low = float(arr.max()), float(arr.min())
        if high > MAX_PARAMETER_MAGNITUDE or low < -MAX_PARAMETER_MAGNITUDE:
            extreme = arr.max() if high > MAX_PARAMETER_MAGNITUDE else arr.min()
            raise ModelError(f"parameter '{attr}' holds {extreme:g}, beyond evsim's limit of "
                             f"{MAX_PARAMETER_MAGNITUDE:g} in magnitude", node=name, path=path)


def _check_integers(value, attr: str, low, name: str, path) -> None:
    """Every element an integer (integral float accepted) and, when ``low`` is given, >= low."""
    arr = np.atleast_1d(np.asarray(value))
    if arr.dtype.kind not in "biuf" or arr.size == 0:
        raise ModelError(f"parameter '{attr}' must be integers, got {_show(value)}", node=name, path=path)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise ModelError(f"parameter '{attr}' must be integers, got {_show(value)}", node=name, path=path)
    if low is not None and np.any(arr < low):
        raise ModelError(f"parameter '{attr}' must be >= {low}, got {_show(value)}", node=name, path=path)


def _check_shape(value, attr: str, name: str, path) -> None:
    """A shape: a non-empty list of positive integers whose product is at most MAX_ELEMENTS."""
    label = "shape" if attr == "shape" else f"shape '{attr}'"
    if value is None:
        raise ModelError(f"missing {label}", node=name, path=path)
    arr = np.atleast_1d(np.asarray(value))
    if arr.dtype.kind not in "iuf" or arr.size == 0 or arr.ndim != 1:
        raise ModelError(f"{label} must be a list of positive integers, got {_show(value)} "
                         f"(dtype {arr.dtype})", node=name, path=path)
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        raise ModelError(f"{label} must be integers, got {_show(value)}", node=name, path=path)
    if np.any(arr < 1):
        raise ModelError(f"{label} {_show(value)} has a non-positive dimension", node=name, path=path)
    dims = [int(v) for v in arr]  # Python integers: the product cannot overflow
    n = math.prod(dims)
    if n > MAX_ELEMENTS:
        raise ModelError(_too_large(label, dims, n), node=name, path=path)


def _too_large(what: str, dims, n: int) -> str:
    shown = "(" + ", ".join(str(d) for d in dims) + ")"
    return (f"{what} {shown} has {n:,} elements, about {_gib(n * BYTES_PER_NEURON)} of engine state; "
            f"evsim's limit is {MAX_ELEMENTS:,} elements per tensor")


def _show(value) -> str:
    arr = np.asarray(value)
    if arr.dtype.kind in "biuf" and arr.size <= 8:
        return str(arr.tolist())
    return repr(value)[:60]


# --------------------------------------------------------------------------------------------
# The whole graph: inferred sizes
# --------------------------------------------------------------------------------------------


def check_sizes(graph, neuron_types: tuple) -> None:
    """Every inferred tensor at most :data:`MAX_ELEMENTS` elements, and all neuron populations
    together too; checked before the builder allocates anything."""
    total = 0
    for name in graph.order:
        for shape in (graph.input_shapes.get(name), graph.shapes.get(name)):
            if shape is None:
                continue
            n = math.prod(int(s) for s in shape)
            if n > MAX_ELEMENTS:
                raise ModelError(_too_large("tensor of shape", list(shape), n), node=name, path=graph.path)
        if graph.type_of(name) in neuron_types:
            total += math.prod(int(s) for s in graph.shapes[name])
    if total > MAX_ELEMENTS:
        raise ModelError(
            f"the graph has {total:,} neurons, about {_gib(total * BYTES_PER_NEURON)} of engine state; "
            f"evsim's limit is {MAX_ELEMENTS:,} neurons",
            path=graph.path,
        )
