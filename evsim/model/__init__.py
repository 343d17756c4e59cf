"""Model: the NIR graph as evsim reads it (:mod:`.graph`), its linear operators (:mod:`.linear`),
the neuron models in continuous time (:mod:`.neurons`) and the exporters' profiles
(:mod:`.profiles`)."""
