"""The overview's per-minute chart as SVG geometry (drawn by the template, no script).

Pure: rows of (minute, sends, deliveries, failures) in, polylines and ticks out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

SERIES = (("sends", "Sends"), ("deliveries", "Deliveries"), ("failures", "Failures"))
WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 24, 12, 28


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    points: str  # an SVG polyline's "x,y x,y …"
    total: int
    peak: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    left: int
    right_edge: int
    top: int
    baseline: int
    series: list[Series]
    y_ticks: list[tuple[float, int]]  # (y, value)
    x_ticks: list[tuple[float, str]]  # (x, "HH:MM")
    rows: list[dict[str, Any]]


def build(rows: Sequence[dict[str, Any]]) -> Chart:
    """Geometry for up to 60 per-minute rows, oldest first."""
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    top_value = nice_ceiling(max([0, *(int(r[k]) for r in rows for k, _ in SERIES)]))
    step = plot_w / max(len(rows) - 1, 1)

    def x_at(i: int) -> float:
        return round(LEFT + i * step, 1)

    def y_at(value: int) -> float:
        return round(TOP + plot_h - plot_h * value / top_value, 1)

    series = [Series(key=key, label=label,
                     points=" ".join(f"{x_at(i)},{y_at(int(r[key]))}" for i, r in enumerate(rows)),
                     total=sum(int(r[key]) for r in rows),
                     peak=max([0, *(int(r[key]) for r in rows)]))
              for key, label in SERIES]
    y_ticks = [(y_at(v), v) for v in (0, top_value // 2, top_value)]
    x_ticks = [(x_at(i), r["minute"].strftime("%H:%M")) for i, r in enumerate(rows)
               if i % 10 == 9 or i == 0]
    return Chart(width=WIDTH, height=HEIGHT, left=LEFT, right_edge=WIDTH - RIGHT, top=TOP,
                 baseline=TOP + plot_h, series=series, y_ticks=y_ticks, x_ticks=x_ticks,
                 rows=list(rows))


def nice_ceiling(value: int) -> int:
    """The smallest of 2, 4, 10, 20, 40, 100, … that is at least ``value`` (and even)."""
    ceiling = 2
    while ceiling < value:
        for factor in (2, 2.5, 2):  # 2 → 4 → 10 → 20 → 40 → 100 …
            ceiling = int(ceiling * factor)
            if ceiling >= value:
                break
    return ceiling
