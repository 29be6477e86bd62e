"""Plots of sweeps over the leak constant L and of one input's spikes.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas, never
through ``pyplot``: no display is needed, the global backend is left alone and no
figure stays registered anywhere (each one is dropped after saving).  Files are
written atomically (see :func:`tdsnn.files.atomic_write`).

* :func:`plot_sweep_accuracy` -- accuracy vs L (Figure 4 style);
* :func:`plot_sweep_ops` -- DNN/SNN operation and energy ratios vs L (Figure 5 style);
* :func:`plot_spike_raster` -- one input's spikes in global time, all populations stacked,
  with the shortcut connections of a graph SNN (:func:`raster_layout` gives its data);
* :func:`plot_spike_histograms` -- per layer, the histogram of local spike times;
* :func:`inspect_sample` -- both of the last two.

Modules: :mod:`.figure` (the canvas and atomic saving), :mod:`.sweep` (the L sweeps),
:mod:`.layout` (where one input's spikes lie, no drawing) and :mod:`.raster` (drawing
them).
"""

from __future__ import annotations

from .figure import DPI
from .layout import (
    MAX_RASTER_NEURONS,
    global_spike_times,
    is_maxpool_name,
    layer_offsets,
    raster_layout,
    silent_counts,
)
from .raster import inspect_sample, plot_spike_histograms, plot_spike_raster, raster_figure
from .sweep import plot_sweep_accuracy, plot_sweep_ops

__all__ = [
    "DPI",
    "MAX_RASTER_NEURONS",
    "global_spike_times",
    "silent_counts",
    "inspect_sample",
    "is_maxpool_name",
    "layer_offsets",
    "plot_spike_histograms",
    "plot_spike_raster",
    "plot_sweep_accuracy",
    "plot_sweep_ops",
    "raster_figure",
    "raster_layout",
]
