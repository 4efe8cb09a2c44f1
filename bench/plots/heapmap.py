"""Figure: the heap map of one cell (address x time occupancy, footprint, live bytes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.plots.data import ReportData, SkipFigure
from bench.plots.style import Style, binary_locator, bytes_formatter, new_figure, save_figure
from bench.table import format_bytes


def heapmap_occupancy(image: np.ndarray) -> np.ndarray:
    """The heap map image as float shares in [0, 1]: floats as they are, integers over their dtype's maximum
    (uint8 255 = fully covered); an integer image holding only 0 and 1 is read as 0/1 occupancy."""
    image = np.asarray(image)
    if np.issubdtype(image.dtype, np.integer):
        top = image.max(initial=0)
        scale = 1.0 if top <= 1 else float(np.iinfo(image.dtype).max)
        return image.astype(np.float64) / scale
    return np.clip(np.nan_to_num(image.astype(np.float64)), 0.0, 1.0)


def plot_heapmap(results: ReportData, styles: dict[str, Style], path: Path) -> str:
    """Address x time occupancy image with the footprint curve; below it live bytes versus footprint."""
    del styles
    heapmap = results.heapmap
    if heapmap is None:
        if results.heapmap_error:
            raise SkipFigure(results.heapmap_error)
        raise SkipFigure("no heapmap.npz in the results directory (the sweep records one when "
                         "meta.heapmap_cell names a cell)")
    if "image" not in heapmap or np.asarray(heapmap["image"]).ndim != 2 or min(np.shape(heapmap["image"])) < 1:
        raise SkipFigure("heapmap.npz has no 2-D 'image' [time_bins, address_bins]")
    occupancy = heapmap_occupancy(heapmap["image"])
    time_bins, address_bins = occupancy.shape
    address_max = float(np.asarray(heapmap.get("address_max", address_bins)).item()) or float(address_bins)
    rows = float(np.asarray(heapmap.get("rows", time_bins)).item()) or float(time_bins)
    footprint = np.asarray(heapmap.get("footprint", np.full(time_bins, np.nan)), dtype=np.float64)
    if footprint.shape != (time_bins,):
        footprint = np.full(time_bins, np.nan)
    cell = {**(results.meta.get("heapmap_cell") or {}), **heapmap.get("meta", {})}
    label = " x ".join(str(cell[key]) for key in ("allocator", "workload") if key in cell)
    if "seed" in cell:
        label += f", seed {cell['seed']}"
    bin_bytes = address_max / address_bins
    live = occupancy.sum(axis=1) * bin_bytes
    times = (np.arange(time_bins) + 0.5) * rows / time_bins

    has_footprint = bool(np.isfinite(footprint).any())
    figure = new_figure(11, 7.6)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3.2, 1.3))
    image = top.imshow(occupancy.T, origin="lower", aspect="auto", cmap="Greys", vmin=0, vmax=1,
                       extent=(0, rows, 0, address_max), interpolation="antialiased")
    address_top = address_max
    if has_footprint:
        top.plot(times, footprint, color="#d62728", linewidth=1.6, drawstyle="steps-mid")
        address_top = max(address_max, float(np.nanmax(footprint)))
        top.fill_between(times, footprint, address_top * 1.04, step="mid", color="#d62728", alpha=0.07, linewidth=0)
    top.set_ylim(0, address_top * 1.04)
    top.yaxis.set_major_locator(binary_locator(address_top))
    top.yaxis.set_major_formatter(bytes_formatter())
    top.set_ylabel("address (offset in the simulated address space)")
    title = f"Heap map: {label}" if label else "Heap map"
    if has_footprint:
        title += "\nred line: footprint (bytes taken from the OS); light pixels below it are holes"
    top.set_title(title)
    colorbar = figure.colorbar(image, ax=top, location="top", shrink=0.5, aspect=40, pad=0.02)
    colorbar.set_label("share of the address bin covered by live blocks (dark = full)")

    bottom.plot(times, live, color="#1f77b4", linewidth=1.3, label="live bytes (from the image)")
    note = f"{time_bins} time bins x {address_bins} address bins of {format_bytes(bin_bytes)}"
    if has_footprint:
        bottom.plot(times, footprint, color="#d62728", linewidth=1.3, drawstyle="steps-mid", label="footprint")
        bottom.fill_between(times, live, np.maximum(footprint, live), color="#d62728", alpha=0.15, step="mid",
                            label="free inside the footprint (holes + unused)")
        with np.errstate(divide="ignore", invalid="ignore"):
            free_share = np.where(footprint > 0, 1.0 - live / footprint, np.nan)
        if np.isfinite(free_share).any():
            worst = int(np.nanargmax(free_share))
            note += (f"; free inside the footprint: up to {100 * max(free_share[worst], 0.0):.0f}% "
                     f"(near row {times[worst]:.0f}), {100 * max(free_share[-1], 0.0):.0f}% at the end")
    highest = max(float(np.nanmax(footprint)) if has_footprint else 0.0, float(live.max(initial=0)), 1.0)
    bottom.set_ylim(0, highest * 1.08)
    bottom.yaxis.set_major_locator(binary_locator(highest))
    bottom.yaxis.set_major_formatter(bytes_formatter())
    bottom.set_ylabel("bytes")
    bottom.set_xlabel("time (trace row)")
    bottom.set_xlim(0, rows)
    bottom.grid(color="#dddddd", linewidth=0.6)
    bottom.legend(loc="best", fontsize=7.5, framealpha=0.9)
    save_figure(figure, path)
    return note

