"""Synthetic but realistic NWB files, for the demo, the tests and the benchmarks.

Nothing here is needed to use lindivc; it makes data when there is no network to fetch any.
"""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np


def spike_trains(n_units: int, duration: float, seed: int = 0) -> list[np.ndarray]:
    """Poisson spike trains (1-30 Hz) with a 2 ms refractory period and some bursting units."""
    rng = np.random.default_rng(seed)
    trains = []
    for u in range(n_units):
        rate = rng.uniform(1.0, 30.0)
        n = rng.poisson(rate * duration)
        t = np.sort(rng.uniform(0, duration, n))
        if u % 4 == 0 and n > 10:  # bursting units: add spikes 3-8 ms after a fifth of spikes
            extra = t[:: 5] + rng.uniform(0.003, 0.008, len(t[:: 5]))
            t = np.sort(np.concatenate([t, extra]))
        keep = np.concatenate([[True], np.diff(t) > 0.002])
        trains.append(t[keep])
    return trains


def make_nwb(path: str, n_units: int = 40, duration: float = 300.0, n_channels: int = 32,
             lfp_seconds: float = 10.0, seed: int = 0) -> str:
    """Write an NWB (HDF5) file with electrodes, a Units table and an LFP-like TimeSeries."""
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    rng = np.random.default_rng(seed)
    nwb = NWBFile(
        session_description="synthetic extracellular recording (lindivc demo data)",
        identifier=f"lindivc-demo-{seed}",
        session_start_time=datetime(2024, 3, 1, 10, 0, tzinfo=timezone.utc),
        lab="lindivc demo lab",
        institution="nowhere",
    )
    device = nwb.create_device(name="probe", description="32-channel silicon probe")
    group = nwb.create_electrode_group(name="shank0", description="shank 0", location="CA1", device=device)
    for ch in range(n_channels):
        nwb.add_electrode(group=group, location="CA1", x=0.0, y=float(ch * 20), z=0.0, filtering="none",
                          imp=1.0e6, rel_x=0.0, rel_y=float(ch * 20))
    for u, t in enumerate(spike_trains(n_units, duration, seed)):
        nwb.add_unit(spike_times=t, electrodes=[u % n_channels], obs_intervals=[[0.0, duration]])
    rate = 1000.0
    n = int(lfp_seconds * rate)
    data = (rng.standard_normal((n, n_channels)) * 50).astype("int16")
    nwb.add_acquisition(TimeSeries(name="lfp", data=data, unit="uV", rate=rate, conversion=1e-6,
                                   description="LFP-like signal"))
    with NWBHDF5IO(path, "w") as io:
        io.write(nwb)
    return path
