// Live charts on the VM and host pages: load the last hour, then append what the websocket
// pushes. A chart box may arrive later (the VM page's Monitoring tab is fetched when shown).
(function () {
  const css = getComputedStyle(document.documentElement);
  const colour = (n) => css.getPropertyValue(n).trim() || "#3558d6";
  function init(box) {
    if (box.dataset.ready) return;
    box.dataset.ready = "1";
    const sampleId = box.dataset.sample, charts = [];
    function make(el, data) {
      const m1 = el.dataset.metric, m2 = el.dataset.metric2;
      const series = [{}, { label: m1, stroke: colour("--brand"), width: 2 }];
      const cols = [[], []];
      (data[m1] || []).forEach(([t, v]) => { cols[0].push(t); cols[1].push(v); });
      if (m2) {
        series.push({ label: m2, stroke: colour("--ok"), width: 2 });
        const byT = new Map((data[m2] || []).map(([t, v]) => [t, v]));
        cols.push(cols[0].map((t) => byT.get(t) ?? null));
      }
      const opts = { width: el.clientWidth || 300, height: 150, series, legend: { show: !!m2 }, axes: [{}, { size: 60 }] };
      const u = new uPlot(opts, cols, el);
      charts.push({ el, u, cols, codes: [el.dataset.code, el.dataset.code2].filter(Boolean) });
    }
    fetch(box.dataset.url, { credentials: "same-origin" }).then((r) => r.json()).then((data) => {
      box.querySelectorAll(".chart").forEach((el) => make(el, data));
      box.dataset.loaded = "1";
    });
    document.addEventListener("htmx:oobAfterSwap", (e) => {
      const el = e.detail.target;
      if (!box.isConnected || !el || el.id !== sampleId || !el.dataset.figures) return;
      const f = JSON.parse(el.dataset.figures);
      charts.forEach((c) => {
        if (f[c.codes[0]] === undefined) return;
        c.cols[0].push(f.ts);
        c.codes.forEach((code, i) => c.cols[i + 1].push(f[code] ?? null));
        if (c.cols[0].length > 720) c.cols.forEach((col) => col.shift());
        c.u.setData(c.cols);
      });
      box.dataset.samples = String(Number(box.dataset.samples || 0) + 1);
    });
  }
  function scan(root) {
    if (root && root.querySelectorAll) root.querySelectorAll(".charts[data-url]").forEach(init);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => scan(document));
  else scan(document);
  document.addEventListener("htmx:load", (e) => scan(e.detail.elt));
})();
