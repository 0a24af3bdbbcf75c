// Report charts (ECharts from npm, served by the head-end under /vendor):
// the chart spec comes from the page (data-chart), drawn as SVG so it stays
// sharp on a phone; a phone gets a taller chart and rotated labels.
(function () {
  var COLORS = { sharp: "#b91c1c", peak: "#ea580c", flat: "#0f6cbd", valley: "#16a34a",
                 deep_valley: "#0e7490", other: "#9ca3af" };
  function draw(el) {
    var c = JSON.parse(el.dataset.chart || "{}");
    if (!c.series) return;
    var narrow = el.clientWidth < 500, hbar = c.kind === "hbar";
    var cat = { type: "category", data: c.x, axisLabel: { rotate: (!hbar && narrow && c.x.length > 6) ? 60 : 0,
                                                         fontSize: narrow ? 10 : 12 } };
    var val = { type: "value", name: c.unit_text };
    var chart = echarts.init(el, null, { renderer: "svg" });
    chart.setOption({
      animation: false,
      grid: { left: hbar ? (narrow ? 90 : 140) : 50, right: 16, top: 40, bottom: narrow ? 70 : 40, containLabel: false },
      legend: { top: 0, type: "scroll" },
      tooltip: { trigger: "axis", confine: true },
      xAxis: hbar ? val : cat,
      yAxis: hbar ? cat : val,
      series: c.series.map(function (s) {
        return { name: s.name, type: c.kind === "line" ? "line" : "bar", stack: s.stack ? "all" : undefined,
                 data: s.data, itemStyle: s.band ? { color: COLORS[s.band] } : undefined };
      })
    });
    el.dataset.drawn = "1";
    window.addEventListener("resize", function () { chart.resize(); });
  }
  // a download's progress: the browser shows the bytes (Content-Length);
  // the page says which file is being made and how many rows it holds
  function exports() {
    var rows = document.getElementById("row-count"), out = document.getElementById("export-progress");
    ["export-xlsx", "export-csv"].forEach(function (id) {
      var a = document.getElementById(id);
      if (!a || !out) return;
      a.addEventListener("click", function () {
        out.textContent = "\u2193 " + a.textContent + " (" + rows.dataset.rows + ")";
      });
    });
  }
  document.addEventListener("DOMContentLoaded", function () {
    exports();
    if (!window.echarts) return;
    document.querySelectorAll(".report-chart").forEach(draw);
  });
})();
