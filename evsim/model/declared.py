"""How a model says it is meant to be read: its profile (and options) declared next to it.

An NIR file does not say which framework exported it, yet the same numbers mean different
dynamics under each exporter's conventions (:mod:`evsim.model.profiles`). A model can declare
them, so that naming the model gives the same result as the tour that introduced it:

* a **sidecar file** ``<model stem>.evsim.json`` beside ``<model stem>.nir``::

      {"format": "evsim-model/1", "profile": "speck", "options": {"dt_us": 1000}}

* or the NIR graph's **metadata**: ``{"evsim_profile": "speck"}`` (and optionally
  ``"evsim_options"``: a JSON string of the same options).

The sidecar wins over the metadata; an explicit ``--profile`` (or ``profile=`` in the API) wins
over both. ``options`` are :class:`evsim.model.profiles.Overrides` fields; an explicit option of
the same name wins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import ModelError
from .profiles import PROFILE_NAMES, Overrides

SIDECAR_FORMAT = "evsim-model/1"
SIDECAR_SUFFIX = ".evsim.json"


@dataclass(frozen=True)
class Declared:
    """A model's declared reading: ``profile`` (None: not declared), ``options`` and where it came from."""

    profile: str | None = None
    options: dict = field(default_factory=dict)
    source: str | None = None  # "sidecar FILE" or "NIR metadata"


def sidecar_path(model_path) -> Path:
    """``dir/model.nir`` -> ``dir/model.evsim.json``."""
    p = Path(model_path)
    return p.with_name(p.stem + SIDECAR_SUFFIX)


def _checked(profile, options, where: str, path) -> Declared:
    if profile is not None and profile not in PROFILE_NAMES:
        raise ModelError(f"{where} declares unknown profile {profile!r} (choose from {', '.join(PROFILE_NAMES)})",
                         path=path)
    if not isinstance(options, dict):
        raise ModelError(f"{where}: 'options' must be an object, got {type(options).__name__}", path=path)
    known = {f.name for f in fields(Overrides)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ModelError(f"{where} declares unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})",
                         path=path)
    return Declared(profile, dict(options), where)


def read_declared(model_path, graph_metadata: dict | None = None) -> Declared:
    """The reading a model declares (sidecar first, then NIR metadata); ``Declared()`` if none."""
    if model_path is not None:
        side = sidecar_path(model_path)
        if side.is_file():
            try:
                doc = json.loads(side.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ModelError(f"cannot read the model's sidecar {side} ({exc})", path=str(model_path)) from None
            if not isinstance(doc, dict) or doc.get("format") != SIDECAR_FORMAT:
                raise ModelError(f"{side} is not an evsim model sidecar (needs \"format\": \"{SIDECAR_FORMAT}\")",
                                 path=str(model_path))
            return _checked(doc.get("profile"), doc.get("options", {}), f"sidecar {side.name}", str(model_path))
    meta = graph_metadata or {}
    if "evsim_profile" in meta:
        profile = meta["evsim_profile"]
        profile = profile.decode() if isinstance(profile, bytes) else str(profile)
        options = meta.get("evsim_options", "{}")
        try:
            options = json.loads(options.decode() if isinstance(options, bytes) else str(options))
        except json.JSONDecodeError as exc:
            raise ModelError(f"NIR metadata 'evsim_options' is not JSON ({exc})", path=model_path) from None
        return _checked(profile, options, "NIR metadata", model_path)
    return Declared()


def declared_profile(model_path) -> str:
    """The profile the model file at ``model_path`` declares (sidecar, then NIR metadata), or
    ``"nir"`` if none: what :func:`evsim.load_model` reads it as without ``profile=``."""
    from .graph import read_nir

    side = sidecar_path(model_path)
    metadata = None
    if not side.is_file() and Path(model_path).is_file():
        metadata = getattr(read_nir(model_path), "metadata", None)
    return read_declared(model_path, metadata).profile or "nir"


def write_sidecar(model_path, profile: str, options: dict | None = None) -> Path:
    """Write ``<model stem>.evsim.json`` declaring how the model is meant to be read."""
    declared = _checked(profile, options or {}, "sidecar", str(model_path))
    side = sidecar_path(model_path)
    side.write_text(json.dumps({"format": SIDECAR_FORMAT, "profile": declared.profile,
                                "options": declared.options}, indent=2) + "\n")
    return side
