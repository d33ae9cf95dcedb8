// Draws every <canvas data-chart="ID"> from the JSON in <script id="ID" type="application/json">
// (written by json_script: no inline script, so the Content-Security-Policy holds).
(function () {
  "use strict";
  var COLORS = ["#417690", "#e8a33d", "#c0392b", "#27ae60", "#8e44ad", "#7f8c8d"];

  function draw(canvas) {
    var source = document.getElementById(canvas.dataset.chart);
    if (!source || typeof Chart === "undefined") { return; }
    var spec = JSON.parse(source.textContent);
    var datasets = spec.datasets.map(function (ds, i) {
      var color = COLORS[i % COLORS.length];
      return {
        label: ds.label,
        data: ds.data,
        borderColor: color,
        backgroundColor: spec.type === "bar" ? color : color + "33",
        tension: 0,
        pointRadius: spec.labels.length > 60 ? 0 : 2,
        fill: false
      };
    });
    var chart = new Chart(canvas, {
      type: spec.type,
      data: { labels: spec.labels, datasets: datasets },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
        plugins: { legend: { display: datasets.length > 1 } }
      }
    });
    canvas.dataset.drawn = String(spec.labels.length);
    canvas.dataset.points = String(datasets.reduce(function (n, ds) { return n + ds.data.length; }, 0));
    return chart;
  }

  function start() {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
