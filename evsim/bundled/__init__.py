"""The bundled N-MNIST reference model, shipped as package data (see ``nmnist_cnn/MODEL_CARD.md``).

It is meant to be read with the ``speck`` profile, event-driven; ``calibration_speck.json`` is
its Top-K calibration and ``samples/`` holds one held-out recording for the demo.
"""

from __future__ import annotations

from pathlib import Path

NMNIST_DIR = Path(__file__).resolve().parent / "nmnist_cnn"
BUNDLED_MODEL = NMNIST_DIR / "model.nir"
BUNDLED_SAMPLES = NMNIST_DIR / "samples"
BUNDLED_CALIBRATION = NMNIST_DIR / "calibration_speck.json"
BUNDLED_PROFILE = "speck"


def bundled_model_path() -> Path:
    """Path of the bundled N-MNIST model (``model.nir``)."""
    return BUNDLED_MODEL
