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

from .bundled import bundled_model_path
from .chip import map_to_speck, quantize_speck
from .compile.builder import CompiledModel, compile_model, load_model
from .input.datasets import FolderDataset
from .errors import EvsimError, ModelError, OptionError, RecordingError
from .input.events import EVENT_DTYPE, make_events
from .model.profiles import PROFILE_NAMES, Overrides
from .input.recordings import Recording, read_events, read_recording, recording_info
from .sim.clock import ClockSimulator
from .sim.event import Simulator
from .sim.result import Cutoff, Result

__version__ = "0.1.0"

__all__ = [
    "bundled_model_path", "CompiledModel", "compile_model", "load_model", "Simulator", "ClockSimulator", "Result", "Cutoff", "Overrides",
    "PROFILE_NAMES", "FolderDataset", "Recording", "read_events", "read_recording", "recording_info",
    "EVENT_DTYPE", "make_events", "EvsimError", "ModelError", "OptionError", "RecordingError",
    "map_to_speck", "quantize_speck",
]
