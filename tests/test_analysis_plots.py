"""The analysis plots stay readable: distinct non-grey colours, legends beside the points, whole-clip size bins."""

from __future__ import annotations

import matplotlib.colors
import numpy as np
import pytest

from hear_sela.analysis import plots


@pytest.fixture
def figures(monkeypatch):
    """The figures the plot functions draw, kept open for inspection instead of closed."""
    kept, close = [], plots.plt.close
    monkeypatch.setattr(plots.plt, "close", kept.append)
    yield kept
    for fig in kept:
        close(fig)


@pytest.mark.parametrize("n", [5, 20, 200])
def test_embedding_map_colours_are_distinct_and_legends_cover_no_point(tmp_path, figures, n):
    rng = np.random.default_rng(n)
    ref = np.concatenate([np.arange(n), rng.integers(0, n, 600)])  # every class present
    xy = rng.normal(size=(n, 2))[ref] * 10 + rng.normal(size=(len(ref), 2))
    plots.embedding_map(xy, ref, [f"label {i}" for i in ref], "PCA", tmp_path / "map.png")
    fig = figures[0]
    fig.canvas.draw()
    for ax in fig.axes:
        legend = ax.get_legend()
        assert not legend.get_window_extent().overlaps(ax.get_window_extent())
        colours = [matplotlib.colors.to_hex(c.get_facecolor()[0]) for c in ax.collections]
        coloured = colours[1:] if len(colours) > min(n, plots.TOP_COLOURS) else colours  # "other" is drawn first
        assert len(coloured) == min(n, plots.TOP_COLOURS) and len(set(colours)) == len(colours)
        for c in coloured:  # grey is reserved for "other"
            r, g, b = matplotlib.colors.to_rgb(c)
            assert max(r, g, b) - min(r, g, b) > 0.05, c


def test_cluster_size_bins_hold_whole_numbers_of_clips(tmp_path, figures):
    sizes = np.random.default_rng(0).poisson(5, 200)  # K = 200: a histogram
    plots.cluster_size_histogram(sizes, tmp_path / "sizes.png")
    bars = figures[0].axes[0].patches
    lefts = np.array([b.get_x() for b in bars])
    widths = np.array([b.get_width() for b in bars])
    np.testing.assert_allclose(lefts % 1, 0.5)  # edges between integers
    np.testing.assert_allclose(widths, np.round(widths))
    heights = np.array([b.get_height() for b in bars])
    assert (widths == 1).all()  # sizes up to ~15: one bin per size
    np.testing.assert_array_equal(heights, np.bincount(sizes, minlength=len(bars))[:len(bars)])
