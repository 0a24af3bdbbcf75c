// The portal's usage charts (ECharts from npm, served by the head-end): kWh
// per day of this month as bars, last month's as a line, per account card.
(function () {
  function kwh(wh) { return Math.round(wh) / 1000; }
  function draw(el) {
    var now = JSON.parse(el.dataset.this || "[]"), last = JSON.parse(el.dataset.last || "[]");
    var days = [], n = Math.max(now.length, last.length);
    for (var i = 1; i <= n; i++) days.push(String(i));
    var chart = echarts.init(el, null, { renderer: "svg" });
    chart.setOption({
      animation: false,
      grid: { left: 40, right: 10, top: 30, bottom: 25 },
      legend: { data: [el.dataset.thisName, el.dataset.lastName], top: 0 },
      tooltip: { trigger: "axis" },
      xAxis: { type: "category", data: days },
      yAxis: { type: "value", name: el.dataset.unit },
      series: [
        { name: el.dataset.thisName, type: "bar", data: now.map(kwh), itemStyle: { color: "#0f6cbd" } },
        { name: el.dataset.lastName, type: "line", data: last.map(kwh), itemStyle: { color: "#9ca3af" } }
      ]
    });
    el.dataset.drawn = "1";
    window.addEventListener("resize", function () { chart.resize(); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    if (!window.echarts) return;
    document.querySelectorAll(".usage-chart").forEach(draw);
  });
})();
