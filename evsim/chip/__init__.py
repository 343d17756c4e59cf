"""What deploying a network on a neuromorphic chip does to it (see :mod:`evsim.chip.speck`)."""

from .speck import ChipMapping, LayerQuantization, SpeckLayer, map_to_speck, quantize_speck

__all__ = ["ChipMapping", "LayerQuantization", "SpeckLayer", "map_to_speck", "quantize_speck"]
