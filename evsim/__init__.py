"""evsim: a fully event-driven simulator for spiking neural networks exported to NIR."""

__version__ = "0.1.0"
