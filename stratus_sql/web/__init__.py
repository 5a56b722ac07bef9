"""The dashboard app (`stratus-sql serve`): its pages (`pages`), their summary numbers
(`summary`) and the static assets under `static/` (style, script, vendored uPlot)."""

from __future__ import annotations

__all__: list[str] = []
