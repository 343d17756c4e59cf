"""Compile: a NIR graph and a profile become the flat arrays the kernels read (:mod:`.builder`)."""
