// Live charts on the VM and host pages: load the last hour, then append what the websocket
// pushes. A chart box may arrive later (the VM page's Monitoring tab is fetched when shown).
(function () {
  const css = getComputedStyle(document.documentElement);
  const colour = (n) => css.getPropertyValue(n).trim() || "#3558d6";
  // What a series is called in its legend and tooltip: people's words, not the metric's code
  // (data-label / data-label2 on the chart win; the code is the last resort).
  const NAMES = {
    cpu_pct: "CPU %", memory_mb: "Memory (MiB)",
    net_rx_bps: "Received", net_tx_bps: "Sent", disk_rd_bps: "Read", disk_wr_bps: "Written",
    host_cpu_load: "CPU load %", host_free_memory_mb: "Free memory (MiB)", host_alloc_vcpu: "Allocated vCPU",
  };
  const nameOf = (code, given) => given || NAMES[code] || NAMES[String(code).toLowerCase()] || String(code).replace(/_/g, " ");
  // byte rates in binary units, labelled as such (KiB/s, MiB/s …)
  const RATE = ["B/s", "KiB/s", "MiB/s", "GiB/s", "TiB/s"];
  function rate(v) {
    if (v === null || v === undefined) return "—";
    let n = Math.abs(v), i = 0;
    while (n >= 1024 && i < RATE.length - 1) { n /= 1024; i++; }
    return (v < 0 ? "-" : "") + (i === 0 ? Math.round(n) : n.toFixed(1)) + " " + RATE[i];
  }
  function init(box) {
    if (box.dataset.ready) return;
    box.dataset.ready = "1";
    const sampleId = box.dataset.sample, charts = [];
    function make(el, data) {
      const m1 = el.dataset.metric, m2 = el.dataset.metric2;
      const isRate = /_bps$/i.test(m1 || "");
      const fmt = isRate ? { value: (u, v) => rate(v) } : {};
      const series = [{}, { label: nameOf(m1, el.dataset.label), stroke: colour("--brand"), width: 2, ...fmt }];
      const cols = [[], []];
      (data[m1] || []).forEach(([t, v]) => { cols[0].push(t); cols[1].push(v); });
      if (m2) {
        series.push({ label: nameOf(m2, el.dataset.label2), stroke: colour("--ok"), width: 2, ...fmt });
        const byT = new Map((data[m2] || []).map(([t, v]) => [t, v]));
        cols.push(cols[0].map((t) => byT.get(t) ?? null));
      }
      const opts = { width: el.clientWidth || 300, height: 150, series, legend: { show: !!m2 }, axes: [{}, isRate ? { size: 72, values: (u, ticks) => ticks.map(rate) } : { size: 60 }] };
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
