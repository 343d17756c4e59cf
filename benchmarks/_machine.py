"""The machine a benchmark ran on, recorded next to its figures (shared by the benchmark scripts)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> dict:
    """Python, platform, logical CPUs, CPU model and AVX-512, memory, numpy/numba versions and the
    load average at the start (a shared machine makes wall times meaningless; it is recorded)."""
    info = {"python": platform.python_version(), "platform": platform.platform(), "logical_cpus": os.cpu_count()}
    try:
        import numba
        import numpy as np

        info["numpy"] = np.__version__
        info["numba"] = numba.__version__
    except ImportError:
        pass
    try:
        text = Path("/proc/cpuinfo").read_text()
        info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")), None)
        flags = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
        info["avx512f"] = " avx512f" in flags
        info["memory_gib"] = round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1)
    except OSError:
        pass
    info["load_average_at_start"] = os.getloadavg()
    return info


def busy_cpu_s() -> float:
    """CPU seconds the whole machine has spent busy since boot (all cores; /proc/stat: user, nice,
    system, irq, softirq, steal). The difference over a run minus the run's own CPU time is what
    other processes used meanwhile: on a shared machine a wall time means little without it (the
    load average lags by a minute). 0.0 where /proc/stat is missing."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_quiet(limit_s: float, cores: float = 0.1, for_s: int = 3) -> bool:
    """Wait (at most ``limit_s`` seconds) until the whole machine has used less than ``cores``
    cores for ``for_s`` seconds in a row (this process sleeps meanwhile, so that is other
    processes); True if it did. On a shared machine a benchmark run started then is more likely to
    have the cores to itself (the CPU other processes used during the run is still worth
    recording: :func:`busy_cpu_s`)."""
    import time

    t0, quiet = time.time(), 0
    while time.time() - t0 < limit_s:
        b = busy_cpu_s()
        time.sleep(1.0)
        quiet = quiet + 1 if busy_cpu_s() - b < cores else 0
        if quiet >= for_s:
            return True
    return False


def nmnist_folder(repo: Path | None = None) -> str:
    """The N-MNIST recordings the benchmarks read by default: ``$EVSIM_SHARED_DATA/nmnist-train1k``
    (``shared/data`` next to the repository ``repo`` when the variable is unset)."""
    repo = Path(__file__).resolve().parents[1] if repo is None else Path(repo)
    return str(Path(os.environ.get("EVSIM_SHARED_DATA", repo.parent / "shared" / "data")) / "nmnist-train1k")
