"""evsim: a fully event-driven simulator for spiking neural networks exported to NIR.

The Python API in one screen::

    import evsim
    model = evsim.load_model("model.nir", profile="speck")      # compile once
    rec = evsim.read_recording("sample.bin")                     # events + metadata
    sim = evsim.Simulator(model, record_spikes=True)
    result = sim.run(rec.events)                                 # one sample, from scratch
    result.prediction, result.output, result.synops, result.spikes_per_node

See :mod:`evsim.simulator` (simulation), :mod:`evsim.build` (compilation),
:mod:`evsim.recordings` (file formats) and ``../shared/SPEC.md`` for the semantics.
"""

from .build import CompiledModel, compile_model
from .datasets import FolderDataset
from .errors import EvsimError, ModelError, OptionError, RecordingError
from .events import EVENT_DTYPE, make_events
from .profiles import PROFILE_NAMES, Overrides
from .recordings import Recording, read_events, read_recording, recording_info
from .simulator import Cutoff, Result, Simulator, load_model

__version__ = "0.1.0"

__all__ = [
    "CompiledModel", "compile_model", "load_model", "Simulator", "Result", "Cutoff", "Overrides",
    "PROFILE_NAMES", "FolderDataset", "Recording", "read_events", "read_recording", "recording_info",
    "EVENT_DTYPE", "make_events", "EvsimError", "ModelError", "OptionError", "RecordingError",
]
