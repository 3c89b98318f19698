"""Layouts shared by the plots and the gallery, and the mosaics drawn from them."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from evoemotion.errors import ConfigError, DataError
from evoemotion.views.layout import categorical_panel, grid_panels, per_class_panel
from evoemotion.views.mosaic import mosaic_figure
from evoemotion.views.plots import save_figure

CLASSES = ["anger", "joy", "sadness"]


def test_2d_grid_puts_high_arousal_on_top_and_low_valence_left():
    index = np.array([[0, 0], [3, 2], [1, 2]])
    (panel,) = grid_panels(index, [4, 3], [(1, 9), (1, 9)], ["valence", "arousal"],
                           np.array([0.1, 0.2, 0.3]))
    assert panel.shape == (3, 4)
    assert [(p.elite, p.row, p.col, p.caption) for p in panel.placements] == [
        (0, 2, 0, "0.10"), (1, 0, 3, "0.20"), (2, 0, 1, "0.30")]
    assert panel.col_labels == ["2.0", "4.0", "6.0", "8.0"]
    assert panel.row_labels == ["7.7", "5.0", "2.3"]
    assert (panel.col_axis, panel.row_axis) == ("valence", "arousal")


def test_3d_grid_gives_one_panel_per_slice():
    index = np.array([[0, 0, 0], [1, 1, 1], [0, 1, 1]])
    panels = grid_panels(index, [2, 2, 2], [(0, 1)] * 3, ["v", "a", "d"], np.zeros(3))
    assert [p.title for p in panels] == ["d 0.00 to 0.50", "d 0.50 to 1.00"]
    assert [[p.elite for p in panel.placements] for panel in panels] == [[0], [1, 2]]


def test_grid_rejects_index_outside_dims():
    with pytest.raises(DataError, match="outside"):
        grid_panels(np.array([[5, 0]]), [4, 4], [(0, 1)] * 2, ["a", "b"], np.zeros(1))


def test_categorical_rows_hold_each_elite_once_ranked_by_probability():
    probs = np.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.6, 0.2, 0.2]])
    panel = categorical_panel(probs, CLASSES)
    rows = {}
    for p in panel.placements:
        rows.setdefault(p.row, []).append((p.col, p.elite, p.caption))
    assert rows == {0: [(0, 1, "0.90"), (1, 3, "0.60"), (2, 0, "0.50")], 1: [(0, 2, "0.70")]}
    assert panel.row_labels == CLASSES and panel.shape == (3, 3)
    top1 = categorical_panel(probs, CLASSES, top_k=1)
    assert sorted(p.elite for p in top1.placements) == [1, 2]


def test_per_class_has_one_column_per_emotion():
    probs = np.array([[0.1, 0.1, 0.8], [0.7, 0.2, 0.1]])
    panel = per_class_panel(np.array([2, 0]), probs, CLASSES)
    assert panel.shape == (1, 3)
    assert [(p.col, p.caption) for p in panel.placements] == [(2, "0.80"), (0, "0.70")]


def test_mosaic_places_thumbnails_in_their_cells(tmp_path):
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 255
    blue = np.zeros((16, 16, 3), np.uint8)
    blue[..., 2] = 255
    (panel,) = grid_panels(np.array([[0, 0], [1, 1]]), [2, 2], [(0, 1)] * 2, ["x", "y"],
                           np.zeros(2))
    fig = mosaic_figure([panel], [red, blue], captions=False)
    path = save_figure(fig, tmp_path / "m", "png")
    assert path.name == "m.png"
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    ax = fig.axes[0]
    (x0, y0), (x1, y1) = ax.get_window_extent().get_points()
    height = pixels.shape[0]

    def at(fx, fy):  # fractions of the axes box, y from the bottom
        return pixels[int(height - (y0 + fy * (y1 - y0))), int(x0 + fx * (x1 - x0))]

    assert list(at(0.25, 0.25)) == [255, 0, 0]  # cell (0, 0): low x, low y
    assert list(at(0.75, 0.75)) == [0, 0, 255]  # cell (1, 1): high x, high y
    assert list(at(0.75, 0.25)) == [232, 232, 232]  # empty cell


@pytest.mark.parametrize("fmt", ["svg", "pdf"])
def test_vector_formats(tmp_path, fmt):
    (panel,) = grid_panels(np.array([[0, 0]]), [2, 2], [(0, 1)] * 2, ["x", "y"], np.zeros(1))
    path = save_figure(mosaic_figure([panel], [np.zeros((8, 8, 3), np.uint8)]), tmp_path / "m",
                       fmt)
    head = path.read_bytes()[:200]
    assert (b"<svg" in head or b"<?xml" in head) if fmt == "svg" else head.startswith(b"%PDF")


def test_unknown_format_is_a_config_error(tmp_path):
    (panel,) = grid_panels(np.array([[0, 0]]), [2, 2], [(0, 1)] * 2, ["x", "y"], np.zeros(1))
    with pytest.raises(ConfigError, match="`fmt`"):
        save_figure(mosaic_figure([panel], [np.zeros((8, 8, 3), np.uint8)]), tmp_path / "m",
                    "jpg")
