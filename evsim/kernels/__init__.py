"""The numba kernels both simulation modes and the analysis share: the ABI (constants and array
layouts), the neuron dynamics and spike rule, and the readout / cutoff decision."""
