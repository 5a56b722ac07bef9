"""The dashboard app's HTML pages, as pure functions that return whole documents.

Every value is escaped with `html.escape`. The pages carry no inline script code and no
`style` attribute, and load nothing from another host: the app answers with
`Content-Security-Policy: default-src 'self'`. The dashboard's data travels in a
`<script type="application/json">` block that `/static/dashboard.js` reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from html import escape
from importlib.resources import files
from string import Template
from typing import Any, NamedTuple
from urllib.parse import urlencode

import orjson

from stratus_sql.web.summary import summary_rows_html

__all__ = [
    "CHARTS",
    "PERIOD_LABELS",
    "Chart",
    "dashboard_page",
    "dashboards_page",
    "error_page",
    "series_json",
    "sign_in_page",
]

PERIOD_LABELS = {"24h": "24 h", "7d": "7 dias", "30d": "30 dias"}


class Chart(NamedTuple):
    """One chart of the dashboard: its container is `chart-<name>`; `unit` tells the script how
    to write the axis ("percent", "ms" or "mb"); `series` pairs a bucket field with its label."""

    name: str
    heading: str
    unit: str
    series: tuple[tuple[str, str], ...]


CHARTS = (
    Chart("ia_efficiency", "Eficiência da IA", "percent", (("ia_efficiency", "eficiência"),)),
    Chart("model_accuracy", "Precisão do modelo", "percent", (("model_accuracy", "precisão"),)),
    Chart(
        "processing_time",
        "Tempo de processamento (ms)",
        "ms",
        (("processing_time_ms", "média"), ("processing_time_p95_ms", "p95")),
    ),
    Chart("memory_usage_mb", "Memória (MB)", "mb", (("memory_usage_mb", "memória"),)),
    Chart(
        "error_rate",
        "Taxa de erro",
        "percent",
        (("error_rate", "média"), ("error_rate_max", "pior")),
    ),
)

# Inside a <script> element the parser looks only for "</script" (and "<!--"): with every
# "<", ">" and "&" written as a JSON escape, no string in the data can end the element early.
_SCRIPT_SAFE = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


@cache
def _template(name: str) -> Template:
    text = files("stratus_sql.web").joinpath("templates", name).read_text(encoding="utf-8")
    return Template(text)


def _fill(name: str, **values: str) -> str:
    return _template(name).substitute(values)


def _document(
    *, title: str, body: str, body_class: str, stylesheets: str = "", scripts: str = ""
) -> str:
    return _fill(
        "base.html",
        title=escape(title),
        body=body,
        body_class=body_class,
        stylesheets=stylesheets,
        scripts=scripts,
    )


def _topbar(*, home_url: str, user_name: str | None = None) -> str:
    account = "" if user_name is None else f'    <span class="user">{escape(user_name)}</span>\n'
    return _fill("topbar.html", home_url=escape(home_url), account=account)


def sign_in_page(*, error: str | None = None) -> str:
    """The sign-in form: an API key posted to `/sign-in`; `error`, when set, shown above it."""
    shown = "" if error is None else f'    <p id="error" role="alert">{escape(error)}</p>\n'
    return _document(title="Entrar", body_class="sign-in", body=_fill("sign_in.html", error=shown))


ERROR_TITLES = {403: "Acesso negado", 404: "Não encontrado", 503: "Indisponível"}


def error_page(*, status: int, message: str) -> str:
    """A page that could not be shown: the status's title, the message and the way back."""
    title = ERROR_TITLES.get(status, "Erro")
    body = (
        '<main class="sign-in">\n  <div class="card">\n'
        f'    <p class="brand">Stratus<span>.IA</span></p>\n    <h1>{escape(title)}</h1>\n'
        f'    <p id="error" role="alert">{escape(message)}</p>\n'
        '    <p><a href="/dashboards">Painéis</a></p>\n  </div>\n</main>'
    )
    return _document(title=title, body_class="error", body=body)


def dashboards_page(
    *, user_name: str, dashboards: Sequence[tuple[str, str]], organisation_url: str | None
) -> str:
    """The user's dashboards as links (name, url), and the whole organisation's when allowed."""
    if dashboards:
        items = "".join(
            f'    <li><a href="{escape(url)}">{escape(name)}</a></li>\n' for name, url in dashboards
        )
        boards = f'  <ul class="boards">\n{items}  </ul>\n'
    else:
        boards = '  <p class="empty">Nenhum painel ainda.</p>\n'
    organisation = (
        ""
        if organisation_url is None
        else f'  <p class="organisation"><a href="{escape(organisation_url)}">'
        "Toda a organização</a></p>\n"
    )
    body = _fill(
        "dashboards.html",
        topbar=_topbar(home_url="/", user_name=user_name),
        user_name=escape(user_name),
        boards=boards,
        organisation=organisation,
    )
    return _document(title="Painéis", body_class="list", body=body)


def series_json(series: Mapping[str, Any]) -> str:
    """The series as JSON that is safe as the text of a `<script>` element."""
    return orjson.dumps(dict(series)).decode().translate(_SCRIPT_SAFE)


def _period_links(period: str, periods: Sequence[str]) -> str:
    links = []
    for choice in periods:
        current = ' aria-current="page"' if choice == period else ""
        label = PERIOD_LABELS.get(choice, choice)
        href = "?" + urlencode({"period": choice})
        links.append(f'        <a href="{escape(href)}"{current}>{escape(label)}</a>\n')
    return "".join(links)


def _chart_html(chart: Chart) -> str:
    fields = " ".join(field for field, _ in chart.series)
    labels = "|".join(label for _, label in chart.series)
    return (
        f'    <section class="chart" id="chart-{chart.name}" aria-labelledby="h-{chart.name}"'
        f' data-unit="{chart.unit}" data-fields="{escape(fields)}"'
        f' data-labels="{escape(labels)}">\n'
        f'      <h2 id="h-{chart.name}">{escape(chart.heading)}</h2>\n'
        '      <div class="plot"></div>\n'
        "    </section>\n"
    )


def dashboard_page(
    *,
    title: str,
    period: str,
    periods: Sequence[str],
    series: Mapping[str, Any],
    csv_url: str,
    list_url: str,
) -> str:
    """One dashboard: the period switcher, five charts drawn by `/static/dashboard.js` from the
    embedded series (the API's JSON body), the CSV link and a summary table computed here."""
    body = _fill(
        "dashboard.html",
        topbar=_topbar(home_url=list_url),
        list_url=escape(list_url),
        title=escape(title),
        period_links=_period_links(period, periods),
        csv_url=escape(csv_url),
        charts="".join(_chart_html(chart) for chart in CHARTS),
        summary_rows=summary_rows_html(series.get("buckets") or ()),
        series_json=series_json(series),
    )
    return _document(
        title=title,
        body_class="dashboard",
        body=body,
        stylesheets='<link rel="stylesheet" href="/static/vendor/uplot/uPlot.min.css">\n',
        scripts=(
            '<script src="/static/vendor/uplot/uPlot.iife.min.js"></script>\n'
            '<script src="/static/dashboard.js"></script>\n'
        ),
    )
