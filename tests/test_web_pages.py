"""The dashboard app's pages: whole documents, every value escaped, no inline script or style
(the app's Content-Security-Policy is default-src 'self'), the series embedded safely and the
summary's numbers those of the buckets. No database, no browser."""

from __future__ import annotations

from html.parser import HTMLParser
from importlib.resources import files
from typing import Any

import orjson
import pytest

from stratus_sql.web.pages import dashboard_page, dashboards_page, sign_in_page
from stratus_sql.web.summary import SUMMARY_ROWS, format_br

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
PERIODS = ("24h", "7d", "30d")
FIELDS = (
    "ia_efficiency",
    "model_accuracy",
    "processing_time_ms",
    "memory_usage_mb",
    "error_rate",
    "processing_time_p95_ms",
    "error_rate_max",
)
VOID = {"meta", "link", "input", "br", "img", "hr", "source", "wbr", "area", "col", "base"}


class Walker(HTMLParser):
    """Every element with its attributes, the text of each script, and a check that each end
    tag closes the element opened last."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.open: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag == "script":
            self.scripts.append((dict(attrs), ""))
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        assert self.open, f"</{tag}> closes nothing"
        assert self.open.pop() == tag, f"</{tag}> does not close the element opened last"

    def handle_data(self, data: str) -> None:
        if self.open and self.open[-1] == "script":
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)
        self.text.append(data)

    def find(self, tag: str | None = None, **attrs: str) -> list[dict[str, str | None]]:
        return [
            a
            for t, a in self.elements
            if (tag is None or t == tag) and all(a.get(k) == v for k, v in attrs.items())
        ]


def walk(page: str) -> Walker:
    walker = Walker()
    walker.feed(page)
    walker.close()
    assert walker.open == [], f"left open: {walker.open}"
    return walker


def bucket(hour: int, **values: float | None) -> dict[str, Any]:
    fields: dict[str, float | None] = dict.fromkeys(FIELDS)
    fields.update(values)
    present = any(v is not None for v in fields.values())
    start = f"2025-03-01T{hour:02d}:00:00Z"
    return {"bucket_start": start, "samples": 5 if present else 0} | fields


def series(*buckets: dict[str, Any], stale: bool = False) -> dict[str, Any]:
    return {"buckets": list(buckets), "stale": stale, "age_seconds": 90.5 if stale else 0.0}


def full(hour: int, *values: float) -> dict[str, Any]:
    """A bucket with a value for every field, in the order of FIELDS."""
    return bucket(hour, **dict(zip(FIELDS, values, strict=True)))


SERIES = series(
    full(0, 0.934, 0.951, 420.25, 1234.5, 0.0123, 900.0, 0.05),
    bucket(1),
    full(2, 0.9, 0.97, 380.5, 1300.0, 0.02, 1100.0, 0.1),
    bucket(3, ia_efficiency=0.1 + 0.2, processing_time_ms=400.0),
)


def dashboard(**changes: Any) -> str:
    arguments: dict[str, Any] = {
        "title": "Frota regional",
        "period": "7d",
        "periods": PERIODS,
        "series": SERIES,
        "csv_url": "/api/dashboards/42/series.csv?period=7d",
        "list_url": "/dashboards",
    } | changes
    return dashboard_page(**arguments)


def boards(**changes: Any) -> str:
    arguments: dict[str, Any] = {
        "user_name": "Ana Souza",
        "dashboards": [("Frota regional", "/dashboards/1"), ("Treinamento IFR", "/dashboards/2")],
        "organisation_url": "/dashboards/organisation",
    } | changes
    return dashboards_page(**arguments)


PAGES = {
    "sign_in": lambda: sign_in_page(),
    "sign_in_error": lambda: sign_in_page(error="Chave inválida"),
    "dashboards": lambda: boards(),
    "dashboards_empty": lambda: boards(dashboards=[], organisation_url=None),
    "dashboard": lambda: dashboard(),
    "dashboard_stale": lambda: dashboard(series=series(bucket(0), stale=True)),
}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_page_is_a_whole_document_that_csp_allows(name: str) -> None:
    page = PAGES[name]()
    assert page.startswith("<!doctype html>")
    found = walk(page)
    assert found.find("html", lang="pt-BR")
    assert found.find("meta", name="viewport", content="width=device-width, initial-scale=1")
    assert found.find("link", rel="stylesheet", href="/static/style.css")
    assert found.find("title")
    for tag, attrs in found.elements:
        assert "style" not in attrs, f"<{tag}> has a style attribute"
        assert tag != "style"
        assert not any(k.startswith("on") for k in attrs), f"<{tag}> has an event handler"
        for key in ("href", "src", "action"):
            url = attrs.get(key)
            assert url is None or url.startswith(("/", "?")), f"{url} is not on this host"
    for attrs, text in found.scripts:
        if attrs.get("type") == "application/json":
            continue
        assert attrs.get("src"), "a script without src"
        assert text.strip() == "", "inline script code"


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_static_file_a_page_names_is_shipped(name: str) -> None:
    static = files("stratus_sql.web").joinpath("static")
    for _, attrs in walk(PAGES[name]()).elements:
        for key in ("href", "src"):
            url = attrs.get(key) or ""
            if url.startswith("/static/"):
                assert static.joinpath(*url.removeprefix("/static/").split("/")).is_file(), url


def test_sign_in_page_posts_the_key_and_shows_an_error_only_when_given() -> None:
    found = walk(sign_in_page())
    assert found.find("form", method="post", action="/sign-in")
    assert found.find("input", type="password", name="key", id="key")
    assert found.find("label", **{"for": "key"})
    assert "Chave de API" in found.text
    assert found.find("button", id="sign-in")
    assert "Entrar" in found.text
    assert not found.find(id="error")

    found = walk(sign_in_page(error=HOSTILE))
    assert found.find("p", id="error", role="alert")
    page = sign_in_page(error=HOSTILE)
    assert HOSTILE not in page
    assert ESCAPED in page


def test_dashboards_page_links_each_dashboard_and_the_organisation() -> None:
    page = boards(
        user_name=HOSTILE,
        dashboards=[(HOSTILE, '/dashboards/1?a="b"'), ("Treinamento", "/dashboards/2")],
    )
    assert HOSTILE not in page
    assert ESCAPED in page
    found = walk(page)
    assert found.find("a", href='/dashboards/1?a="b"')
    assert found.find("a", href="/dashboards/2")
    assert found.find("a", href="/dashboards/organisation")
    assert "Toda a organização" in found.text
    assert "Painéis" in found.text
    assert found.find("form", method="post", action="/sign-out")
    assert found.find("button", id="sign-out")
    assert "Sair" in found.text

    found = walk(boards(dashboards=[], organisation_url=None))
    assert "Toda a organização" not in found.text
    assert not found.find("a", href="/dashboards/organisation")


def test_dashboard_page_has_its_controls_and_charts() -> None:
    found = walk(dashboard(title=HOSTILE))
    page = dashboard(title=HOSTILE)
    assert HOSTILE not in page
    assert ESCAPED in page
    assert found.find("a", id="csv", href="/api/dashboards/42/series.csv?period=7d")
    assert "download" in found.find("a", id="csv")[0]
    assert found.find("a", href="/dashboards")
    (stale,) = found.find("div", id="stale", role="alert")
    assert "hidden" in stale
    for name in (
        "ia_efficiency",
        "model_accuracy",
        "processing_time",
        "memory_usage_mb",
        "error_rate",
    ):
        assert found.find(id=f"chart-{name}"), name
    for heading in (
        "Eficiência da IA",
        "Precisão do modelo",
        "Tempo de processamento (ms)",
        "Memória (MB)",
        "Taxa de erro",
    ):
        assert heading in found.text
    assert found.find(id="chart-processing_time")[0]["data-fields"] == (
        "processing_time_ms processing_time_p95_ms"
    )
    assert found.find(id="chart-error_rate")[0]["data-fields"] == "error_rate error_rate_max"
    assert found.find("form", method="post", action="/sign-out")
    assert found.find("script", src="/static/vendor/uplot/uPlot.iife.min.js")
    assert found.find("script", src="/static/dashboard.js")


def test_the_current_period_alone_is_marked() -> None:
    found = walk(dashboard(period="7d"))
    assert found.find("nav", id="periods")
    links = {
        a["href"]: a.get("aria-current")
        for a in found.find("a")
        if (a["href"] or "").startswith("?period=")
    }
    assert links == {"?period=24h": None, "?period=7d": "page", "?period=30d": None}
    for label in ("24 h", "7 dias", "30 dias"):
        assert label in found.text


def embedded(page: str) -> str:
    found = walk(page)
    blocks = [text for attrs, text in found.scripts if attrs.get("id") == "series"]
    assert len(blocks) == 1
    assert found.find("script", id="series", type="application/json")
    return blocks[0]


def test_the_series_round_trips_and_cannot_close_its_script_element() -> None:
    trap = "</script><script>alert(1)</script><!-- & >"
    data = series(bucket(0, ia_efficiency=0.5), bucket(1)) | {"note": trap}
    page = dashboard(series=data)
    raw = embedded(page)
    assert "<" not in raw
    assert ">" not in raw
    assert "&" not in raw
    assert orjson.loads(raw) == data
    # The walker saw exactly the page's three scripts: the data did not open a fourth.
    assert len(walk(page).scripts) == 3
    assert trap not in page


def cells(page: str) -> dict[tuple[str, str], dict[str, str | None]]:
    found = walk(page)
    return {(a["data-field"] or "", a["data-stat"] or ""): a for a in found.find("td") if a}


def test_the_summary_is_min_mean_max_of_the_bucket_values() -> None:
    found = cells(dashboard())
    for row in SUMMARY_ROWS:
        values = [b[row.field] for b in SERIES["buckets"] if b[row.field] is not None]
        expected = {"min": min(values), "mean": sum(values) / len(values), "max": max(values)}
        for stat, value in expected.items():
            raw = found[row.field, stat]["data-value"]
            assert raw is not None
            assert float(raw) == value, (row.field, stat)
            assert raw == repr(float(value))
    # The formatted text rounds; data-value keeps the float's every digit (0.1 + 0.2).
    assert found["ia_efficiency", "min"]["data-value"] == "0.30000000000000004"
    assert found["ia_efficiency", "max"]["data-value"] == "0.934"


def test_the_summary_writes_numbers_the_brazilian_way_and_a_dash_for_no_value() -> None:
    page = dashboard(series=series(bucket(0, ia_efficiency=0.934, memory_usage_mb=1234.56)))
    assert 'data-field="ia_efficiency" data-stat="mean" data-value="0.934">93,4%</td>' in page
    assert 'data-field="memory_usage_mb" data-stat="max" data-value="1234.56">1.235</td>' in page
    for field in ("model_accuracy", "error_rate_max"):
        for stat in ("min", "mean", "max"):
            assert f'<td data-field="{field}" data-stat="{stat}" class="empty">-</td>' in page
            assert "data-value" not in cells(page)[field, stat]


@pytest.mark.parametrize(
    ("value", "decimals", "percent", "text"),
    [
        (0.934, 1, True, "93,4%"),
        (0.0123, 2, True, "1,23%"),
        (1234.56, 0, False, "1.235"),
        (1234567.891, 2, False, "1.234.567,89"),
        (-0.0001, 0, False, "0"),
        (-0.00001, 2, True, "0,00%"),
        (12.5, 1, False, "12,5"),
    ],
)
def test_format_br(value: float, decimals: int, percent: bool, text: str) -> None:
    assert format_br(value, decimals, percent=percent) == text


def test_an_empty_series_renders_dashes_everywhere() -> None:
    page = dashboard(series=series(*(bucket(h) for h in range(24))))
    found = cells(page)
    assert len(found) == len(SUMMARY_ROWS) * 3
    assert all("data-value" not in attrs for attrs in found.values())
    assert orjson.loads(embedded(page))["buckets"][0]["ia_efficiency"] is None
