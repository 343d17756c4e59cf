"""evsim.numba_start: the command line loads cached kernels without numba's implementation
registries, and what it loads computes what numba's usual start gives.

Each check runs in fresh interpreters (the registries, once loaded, stay loaded for a process):
a module of cached functions is compiled in one, then loaded from numba's cache in others, with
the command line's start and with numba's usual one (``EVSIM_NUMBA_PLAIN=1``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from evsim.bundled import BUNDLED_MODEL, BUNDLED_SAMPLES

KERNELS = textwrap.dedent('''
    import numpy as np
    from numba import njit

    @njit(cache=True)
    def cumulative_squares(n):
        out = np.empty(n)  # allocated inside the kernel: numba's runtime
        total = 0.0
        for i in range(n):
            total += i * i
            out[i] = total
        return out

    @njit(cache=True)
    def top_two_gap(v):
        top1, top2 = -np.inf, -np.inf
        for x in v:
            if x > top1:
                top1, top2 = x, top1
            elif x > top2:
                top2 = x
        return top1 - top2
''')

PROBE = textwrap.dedent('''
    import json, sys
    from evsim.numba_start import start_numba
    started = start_numba()
    import numpy as np
    import kernels
    squares = kernels.cumulative_squares(6).tolist()
    gap = kernels.top_two_gap(np.array([3.0, 9.0, 4.5, 8.0]))
    print(json.dumps({"started": started, "squares": squares, "gap": gap,
                      "hits": sum(kernels.cumulative_squares.stats.cache_hits.values())
                              + sum(kernels.top_two_gap.stats.cache_hits.values()),
                      "registries_loaded": "numba.np.arraymath" in sys.modules}))
''')


def _probe(folder, plain: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "EVSIM_NUMBA_PLAIN"}
    env["PYTHONPATH"] = str(folder) + os.pathsep + env.get("PYTHONPATH", "")
    if plain:
        env["EVSIM_NUMBA_PLAIN"] = "1"
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_cached_functions_load_without_the_registries_and_compute_the_same(tmp_path):
    (tmp_path / "kernels.py").write_text(KERNELS)
    expected_squares = np.cumsum(np.arange(6.0) ** 2).tolist()

    compiled = _probe(tmp_path, plain=False)  # a cold cache: compiled here, registries loaded
    assert compiled["started"] and compiled["hits"] == 0 and compiled["registries_loaded"]
    assert compiled["squares"] == expected_squares and compiled["gap"] == 1.0

    loaded = _probe(tmp_path, plain=False)
    assert loaded["started"] and loaded["hits"] == 2, loaded
    assert not loaded["registries_loaded"]  # what the command line's start saves
    assert loaded["squares"] == expected_squares and loaded["gap"] == 1.0

    plain = _probe(tmp_path, plain=True)  # numba's usual start loads them at the first cache load
    assert not plain["started"] and plain["hits"] == 2 and plain["registries_loaded"]
    assert plain["squares"] == loaded["squares"] and plain["gap"] == loaded["gap"]


def test_the_command_line_gives_the_same_records_either_way(tmp_path):
    samples = []
    for plain in (False, True):
        out = tmp_path / f"eval_{plain}.json"
        env = {k: v for k, v in os.environ.items() if k != "EVSIM_NUMBA_PLAIN"}
        if plain:
            env["EVSIM_NUMBA_PLAIN"] = "1"
        proc = subprocess.run([sys.executable, "-m", "evsim.cli", "eval", str(BUNDLED_MODEL), str(BUNDLED_SAMPLES),
                               "--profile", "speck", "--quiet", "--json", str(out)],
                              capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        samples.append(json.loads(out.read_text())["samples"])
    assert samples[0] and "anytime" in samples[0][0]
    assert samples[0] == samples[1]


WARM_RUN = textwrap.dedent('''
    import sys
    from numba.core import event
    from evsim import cli
    with event.install_recorder("numba:compile") as recorder:
        code = cli.main(sys.argv[1:])
    compiled = sorted({e.data["dispatcher"].py_func.__qualname__ for _, e in recorder.buffer})
    print("COMPILED", code, ",".join(compiled))
''')


@pytest.mark.parametrize("mode", [[], ["--mode", "clock", "--bin-us", "1000"]], ids=["event", "clock"])
def test_a_second_command_compiles_nothing(tmp_path, mode):
    """Every kernel a command needs comes from numba's on-disk cache once a first run filled it:
    the second identical command compiles nothing (the clock mode's typed Lists once compiled
    their own methods in every process, ~2 s)."""
    args = ["eval", str(BUNDLED_MODEL), str(BUNDLED_SAMPLES), "--profile", "speck", "--quiet",
            "--json", str(tmp_path / "out.json"), *mode]
    lines = []
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", WARM_RUN, *args], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        lines.append([line for line in proc.stdout.splitlines() if line.startswith("COMPILED")][-1])
    assert lines[1] == "COMPILED 0 ", lines
