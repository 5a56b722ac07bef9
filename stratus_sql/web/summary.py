"""The dashboard page's summary: min, mean and max of each statistic over a series' buckets,
the rows of `make demo`'s terminal table, numbers written the Brazilian way ("93,4%", "1.234")."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any, NamedTuple

__all__ = ["SUMMARY_ROWS", "Stats", "SummaryRow", "format_br", "stats", "summary_rows_html"]


class SummaryRow(NamedTuple):
    """One row of the summary: its label, the bucket field it reads and how to write a value."""

    label: str
    field: str
    decimals: int
    percent: bool


class Stats(NamedTuple):
    """The smallest, the mean and the largest of a field's values."""

    min: float
    mean: float
    max: float


SUMMARY_ROWS = (
    SummaryRow("Eficiência da IA", "ia_efficiency", 1, percent=True),
    SummaryRow("Precisão do modelo", "model_accuracy", 1, percent=True),
    SummaryRow("Processamento (ms)", "processing_time_ms", 0, percent=False),
    SummaryRow("Processamento p95 (ms)", "processing_time_p95_ms", 0, percent=False),
    SummaryRow("Memória (MB)", "memory_usage_mb", 0, percent=False),
    SummaryRow("Taxa de erro", "error_rate", 2, percent=True),
    SummaryRow("Pior taxa de erro", "error_rate_max", 2, percent=True),
)

# Python writes "1,234.5"; Brazil writes "1.234,5".
_TO_BR = str.maketrans({",": ".", ".": ","})


def format_br(value: float, decimals: int, *, percent: bool = False) -> str:
    """`value` with a decimal comma and a thousands dot; as a percent, times 100 with "%"."""
    scaled = value * 100 if percent else value
    text = f"{scaled:,.{decimals}f}".translate(_TO_BR)
    if text.lstrip("-").strip("0,.") == "":
        text = text.lstrip("-")  # a value that rounds to zero is not "-0"
    return text + "%" if percent else text


def stats(buckets: Iterable[Mapping[str, Any]], field: str) -> Stats | None:
    """Min, mean (of the bucket values) and max of `field` over the buckets that have it."""
    present = [float(v) for b in buckets if (v := b.get(field)) is not None]
    if not present:
        return None
    return Stats(min(present), sum(present) / len(present), max(present))


def summary_rows_html(buckets: Sequence[Mapping[str, Any]]) -> str:
    """The summary table's body: a row per statistic, each number cell carrying its exact value
    in `data-value` (the repr of the float) beside the formatted text; "-" for no value."""
    lines = []
    for row in SUMMARY_ROWS:
        found = stats(buckets, row.field)
        cells = []
        for stat in ("min", "mean", "max"):
            where = f'data-field="{escape(row.field)}" data-stat="{stat}"'
            if found is None:
                cells.append(f'<td {where} class="empty">-</td>')
                continue
            value: float = getattr(found, stat)
            text = format_br(value, row.decimals, percent=row.percent)
            cells.append(f'<td {where} data-value="{value!r}">{escape(text)}</td>')
        lines.append(
            f'          <tr><th scope="row">{escape(row.label)}</th>{"".join(cells)}</tr>\n'
        )
    return "".join(lines)
