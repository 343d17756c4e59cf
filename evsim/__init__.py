"""evsim: a fully event-driven simulator for spiking neural networks exported to NIR.

The Python API in one screen::

    import evsim
    model = evsim.load_model("model.nir", profile="speck")      # compile once
    rec = evsim.read_recording("sample.bin")                     # events + metadata
    sim = evsim.Simulator(model, record_spikes=True)
    result = sim.run(rec.events)                                 # one sample, from scratch
    result.prediction, result.output, result.synops, result.spikes_per_node
    evsim.load_model("model.nir", profile="speck", quantize="speck")  # as deployed on Speck
    evsim.map_to_speck("model.nir").verdict                      # does it fit the chip?

See :mod:`evsim.sim.event` (simulation), :mod:`evsim.compile.builder` (compilation),
:mod:`evsim.input.recordings` (file formats) and ``docs/SEMANTICS.md`` in the repository for the semantics.
"""

from importlib import import_module

from . import kernel_cache as _kernel_cache
from .bundled import bundled_model_path
from .errors import EvsimError, ModelError, OptionError, RecordingError

_kernel_cache.ensure_consistent()  # before any kernel is loaded from numba's cache

__version__ = "0.1.0"

# The rest of the API is imported on first use (PEP 562): `import evsim` and `evsim --help` stay
# fast, and the command line can take a Ctrl-C while numba loads (evsim.cli).
_LAZY = {
    "map_to_speck": ".chip", "quantize_speck": ".chip",
    "CompiledModel": ".compile.builder", "compile_model": ".compile.builder", "load_model": ".compile.builder",
    "FolderDataset": ".input.datasets",
    "EVENT_DTYPE": ".input.events", "make_events": ".input.events",
    "PROFILE_NAMES": ".model.profiles", "Overrides": ".model.profiles",
    "Recording": ".input.recordings", "read_events": ".input.recordings", "read_recording": ".input.recordings",
    "recording_info": ".input.recordings",
    "ClockSimulator": ".sim.clock", "Simulator": ".sim.event", "Cutoff": ".sim.result", "Result": ".sim.result",
}
_SUBPACKAGES = {"analysis", "chip", "compile", "input", "kernels", "model", "plots", "sim", "bundled", "cli", "paths",
                "errors", "kernel_cache"}

__all__ = ["bundled_model_path", "EvsimError", "ModelError", "OptionError", "RecordingError", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    if name in _SUBPACKAGES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'evsim' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | _SUBPACKAGES)
