"""The heavy evaluation job of benchmarks/bench_eval_heavy.py is what it claims to be.

The dataset writer must produce a ``root/<label>/`` folder that evsim's folder reader reads back
with the intended labels and, for each file, exactly the events of ``moving_object`` with that
recording's seed; the model written with ``nir.write`` (each conv's input shape filled in) must
simulate exactly as the in-memory graph of ``bench_vgg.vgg_graph`` does. No timing here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_eval_heavy as heavy  # noqa: E402
import evsim  # noqa: E402


def test_dataset_writer_labels_and_events(tmp_path):
    samples = heavy.write_dataset(tmp_path, n=7, events=300, classes=3, seed0=50)
    ds = evsim.FolderDataset(tmp_path)
    assert ds.samples == samples
    # labels i % 3 for recording i, in the reader's order (label, then file name)
    expected = sorted(((f"rec{i:04d}.npy", i % 3) for i in range(7)), key=lambda s: (s[1], s[0]))
    assert [(Path(p).name, lab) for p, lab in ds.samples] == expected
    assert ds.classes == ["0", "1", "2"]
    for k, (path, label) in enumerate(ds.samples):
        i = int(Path(path).stem[3:])
        rec = ds[k]
        assert rec.label == label == i % 3
        want = heavy.moving_object(300, seed=50 + i)
        for f in ("t", "x", "y", "p"):
            np.testing.assert_array_equal(rec.events[f], want[f])
    # different seeds: different recordings
    assert not np.array_equal(ds[0].events["x"], ds[1].events["x"])


def test_written_model_simulates_as_the_in_memory_graph(tmp_path):
    path = tmp_path / "vgg.nir"
    heavy.write_model(path)
    events = heavy.moving_object(100_000, seed=7)  # the benchmark's size: every layer fires (~1 s)
    from_file = evsim.Simulator(evsim.load_model(str(path), profile="speck")).run(events)
    in_memory = evsim.Simulator(evsim.load_model(heavy.vgg_graph(), profile="speck")).run(events)
    assert from_file.prediction is not None and all(v > 0 for v in from_file.spikes_per_node.values())
    for f in ("prediction", "events_consumed", "synops", "spikes_per_node", "status", "decision_time_us"):
        assert getattr(from_file, f) == getattr(in_memory, f), f
    np.testing.assert_array_equal(from_file.output, in_memory.output)
