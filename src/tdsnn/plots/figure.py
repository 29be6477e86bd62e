"""Figures drawn on the Agg canvas, never through ``pyplot``, and written atomically.

No display is needed, the global backend is left alone and no figure stays registered
anywhere: each one is dropped after saving (see :func:`tdsnn.files.atomic_write`).
"""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..files import atomic_write

DPI = 120


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches on its own Agg canvas."""
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: str | os.PathLike, top: float = 0.0) -> Path:
    """Lay out and write ``fig`` (format from the suffix, PNG by default), then drop its
    contents; ``top``: inches kept free above the axes (a suptitle)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    height = fig.get_figheight()
    fig.tight_layout(rect=(0, 0, 1, 1 - top / height) if top else None)
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format=fmt, dpi=DPI))
    finally:
        fig.clear()
    return path
