/* The dashboard page's charts, drawn with the vendored uPlot from the series embedded in
 * <script type="application/json" id="series"> (the API's JSON body).
 *
 * Each chart container (<section class="chart" id="chart-NAME">) says what to draw:
 * data-fields (bucket fields, space separated), data-labels (their legend labels, "|"
 * separated) and data-unit ("percent", "ms" or "mb"). An empty bucket's value stays null, so
 * uPlot leaves a gap there instead of drawing a zero.
 *
 * Plain ES2020, no build step. It logs nothing and throws nothing: a chart that cannot be
 * drawn says so in its own box. window.stratusCharts maps container id -> uPlot instance.
 */
(function () {
  "use strict";

  const COLORS = ["#2563eb", "#dc6803"];
  const NARROW = 700;
  const RESIZE_DELAY_MS = 150;
  const DAY = 86400;

  const formats = new Map();

  /* pt-BR numbers ("1.234", "93,4%"), one Intl formatter per kind kept for reuse. */
  function numberFormat(digits, percent = false) {
    const key = (percent ? "%" : "") + digits;
    if (!formats.has(key)) {
      const style = percent ? "percent" : "decimal";
      const options = { style, minimumFractionDigits: digits, maximumFractionDigits: digits };
      formats.set(key, new Intl.NumberFormat("pt-BR", options));
    }
    return formats.get(key);
  }

  const pad2 = (n) => String(n).padStart(2, "0");
  const hhmm = (date) => pad2(date.getHours()) + ":" + pad2(date.getMinutes());
  const ddmm = (date) => pad2(date.getDate()) + "/" + pad2(date.getMonth() + 1);
  const when = (seconds) => ddmm(new Date(seconds * 1000)) + " " + hhmm(new Date(seconds * 1000));

  /* Digits enough to tell ticks `step` apart (a step of 0,5 wants one). */
  function digitsFor(step) {
    if (!(step > 0) || step >= 1) return 0;
    return Math.min(4, Math.ceil(-Math.log10(step) - 1e-9));
  }

  function formatValue(unit, value) {
    if (value == null || !Number.isFinite(value)) return "–";
    if (unit === "percent") return numberFormat(Math.abs(value) < 0.1 ? 2 : 1, true).format(value);
    return numberFormat(0).format(value);
  }

  function axisValues(unit) {
    return (u, splits, axisIdx, space, step) => {
      const percent = unit === "percent";
      const format = numberFormat(digitsFor(percent ? step * 100 : step), percent);
      return splits.map((v) => (v == null ? "" : format.format(v)));
    };
  }

  /* Local 24 h times; the date under the first tick and wherever the day changes. */
  function timeValues(u, splits, axisIdx, space, step) {
    let lastDay = null;
    return splits.map((s) => {
      if (s == null) return "";
      const date = new Date(s * 1000);
      const day = ddmm(date);
      if (step >= DAY) return day;
      const label = day === lastDay ? hhmm(date) : hhmm(date) + "\n" + day;
      lastDay = day;
      return label;
    });
  }

  function xRange(u, min, max) {
    if (min == null || max == null) {
      const now = Math.floor(Date.now() / 1000);
      return [now - DAY, now];
    }
    return min === max ? [min - 3600, max + 3600] : [min, max];
  }

  /* Every statistic here is >= 0: start near zero, pad above, and keep rates within 100%. */
  function yRange(unit) {
    return (u, min, max) => {
      const top = unit === "percent" ? 1 : 100;
      if (min == null || max == null || !Number.isFinite(min) || !Number.isFinite(max)) {
        return [0, top];
      }
      const span = max - min;
      const least = unit === "percent" ? 0.01 : 1;
      const padding = span > 0 ? span * 0.2 : Math.abs(max) * 0.1 || least;
      const low = Math.max(0, min - padding);
      let high = max + padding;
      if (unit === "percent") high = Math.min(1, high);
      if (high <= low) high = low + least;
      return [low, high];
    };
  }

  function axisSize(u, values) {
    if (!values) return 40;
    const longest = values.reduce((n, v) => Math.max(n, String(v).length), 0);
    return Math.max(40, Math.ceil(longest * 7.2) + 18);
  }

  function chartHeight() {
    return window.innerWidth < NARROW ? 200 : 230;
  }

  function plotWidth(plot) {
    return Math.max(200, Math.floor(plot.clientWidth || 0));
  }

  function seriesOptions(unit, label, index) {
    const color = COLORS[index % COLORS.length];
    return {
      label,
      stroke: color,
      width: 2,
      dash: index === 0 ? undefined : [6, 4],
      fill: index === 0 ? color + "1a" : undefined,
      spanGaps: false,
      points: { show: true, size: 6, width: 1, stroke: color, fill: color },
      value: (u, v) => formatValue(unit, v),
    };
  }

  function options(container, plot) {
    const unit = container.dataset.unit || "ms";
    const fields = (container.dataset.fields || "").split(" ").filter(Boolean);
    const labels = (container.dataset.labels || "").split("|");
    const axis = {
      stroke: "#475569",
      font: "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
      grid: { stroke: "#e5e7eb", width: 1 },
      ticks: { stroke: "#d1d5db", width: 1, size: 4 },
    };
    return {
      fields,
      opts: {
        width: plotWidth(plot),
        height: chartHeight(),
        scales: { x: { time: true, range: xRange }, y: { range: yRange(unit) } },
        series: [
          { label: "hora", value: (u, v) => (v == null ? "–" : when(v)) },
          ...fields.map((field, i) => seriesOptions(unit, labels[i] || field, i)),
        ],
        axes: [
          { ...axis, values: timeValues, space: 56 },
          { ...axis, values: axisValues(unit), size: axisSize, space: 36 },
        ],
        legend: { show: true, live: true },
        cursor: { drag: { x: true, y: false } },
      },
    };
  }

  function toNumber(value) {
    return typeof value === "number" && Number.isFinite(value) ? value : null;
  }

  function columns(buckets, fields) {
    const xs = buckets.map((b) => Date.parse(b.bucket_start) / 1000);
    return [xs, ...fields.map((field) => buckets.map((b) => toNumber(b[field])))];
  }

  /* The last bucket with a value in any series: the legend shows it while no bucket is
   * pointed at, rather than a row of dashes. */
  function lastIndex(data) {
    for (let i = data[0].length - 1; i >= 0; i--) {
      if (data.slice(1).some((column) => column[i] !== null)) return i;
    }
    return null;
  }

  function legendAtRest(idx) {
    return (u) => {
      if (u.cursor.idx == null && idx != null) u.setLegend({ idx });
    };
  }

  function note(plot, message, className) {
    const p = document.createElement("p");
    p.className = className;
    p.textContent = message;
    plot.appendChild(p);
  }

  function fail(plot, message) {
    plot.textContent = message;
    plot.classList.add("failed");
  }

  function draw(container, buckets, charts) {
    const plot = container.querySelector(".plot") || container;
    try {
      const { fields, opts } = options(container, plot);
      const data = columns(buckets, fields);
      const first = data[1] || [];
      container.dataset.points = String(first.filter((v) => v !== null).length);
      const last = lastIndex(data);
      opts.hooks = { setCursor: [legendAtRest(last)] };
      const chart = new uPlot(opts, data, plot);
      charts[container.id] = chart;
      if (last == null) note(plot, "Sem dados neste período", "no-data");
      else chart.setLegend({ idx: last });
    } catch (e) {
      fail(plot, "Não foi possível desenhar este gráfico.");
    }
  }

  function showStale(series) {
    const banner = document.getElementById("stale");
    if (!banner || series.stale !== true) return;
    const age = Number(series.age_seconds);
    const at = new Date(Date.now() - (Number.isFinite(age) ? age : 0) * 1000);
    banner.textContent = "Dados de " + hhmm(at) + ", banco de dados indisponível";
    banner.hidden = false;
  }

  function resizeAll(charts) {
    for (const [id, chart] of Object.entries(charts)) {
      const container = document.getElementById(id);
      const plot = container && (container.querySelector(".plot") || container);
      if (plot) chart.setSize({ width: plotWidth(plot), height: chartHeight() });
    }
  }

  function readSeries() {
    const block = document.getElementById("series");
    if (!block) return null;
    try {
      const series = JSON.parse(block.textContent || "null");
      return series && typeof series === "object" ? series : null;
    } catch (e) {
      return null;
    }
  }

  function main() {
    const charts = {};
    window.stratusCharts = charts;
    const containers = Array.from(document.querySelectorAll("section.chart[id^='chart-']"));
    const series = readSeries();
    if (!series) {
      containers.forEach((c) => fail(c.querySelector(".plot") || c, "Dados indisponíveis."));
      return;
    }
    showStale(series);
    if (typeof uPlot !== "function") {
      containers.forEach((c) => fail(c.querySelector(".plot") || c, "Gráficos indisponíveis."));
      return;
    }
    const buckets = Array.isArray(series.buckets) ? series.buckets : [];
    containers.forEach((c) => draw(c, buckets, charts));

    let timer = null;
    window.addEventListener("resize", () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        try {
          resizeAll(charts);
        } catch (e) {
          /* a chart that cannot resize keeps its size */
        }
      }, RESIZE_DELAY_MS);
    });
  }

  try {
    main();
  } catch (e) {
    /* nothing to log: the summary table below the charts still shows the numbers */
  }
})();
