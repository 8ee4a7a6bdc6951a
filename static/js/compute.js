// Compute pages: the VM page's tabs (ARIA tabs: arrow keys, Home/End; deep links by ?tab= or
// #hash; costly tabs fetched by htmx when first shown), and the VM list's column chooser and
// bulk actions. Loaded by templates/compute/*.html only. Everything works without it: tabs are
// links (?tab=…), the column chooser and the bulk form are plain forms.
(function () {
  "use strict";

  // ---- tabs ---------------------------------------------------------------------------------
  function tabsOf(root) {
    return Array.from(root.querySelectorAll('[role="tab"]'));
  }
  function show(root, tab, focus, remember) {
    tabsOf(root).forEach((t) => {
      const on = t === tab;
      t.setAttribute("aria-selected", on ? "true" : "false");
      t.tabIndex = on ? 0 : -1;
      const panel = document.getElementById(t.getAttribute("aria-controls"));
      if (panel) panel.hidden = !on;
    });
    const panel = document.getElementById(tab.getAttribute("aria-controls"));
    if (panel && window.htmx) panel.querySelectorAll("[data-lazy]").forEach((el) => htmx.trigger(el, "nephele:tab-shown"));
    if (focus) tab.focus();
    if (remember) {
      const url = new URL(window.location.href);
      url.searchParams.set("tab", tab.dataset.tab);
      url.hash = "";
      window.history.replaceState(null, "", url);
    }
  }
  document.addEventListener("click", (e) => {
    const tab = e.target.closest('[data-tabs] [role="tab"]');
    if (!tab) return;
    e.preventDefault();
    show(tab.closest("[data-tabs]"), tab, false, true);
  });
  document.addEventListener("keydown", (e) => {
    const tab = e.target.closest('[data-tabs] [role="tab"]');
    if (!tab) return;
    const root = tab.closest("[data-tabs]"), all = tabsOf(root);
    let i = all.indexOf(tab);
    if (e.key === "ArrowRight") i = (i + 1) % all.length;
    else if (e.key === "ArrowLeft") i = (i - 1 + all.length) % all.length;
    else if (e.key === "Home") i = 0;
    else if (e.key === "End") i = all.length - 1;
    else if (e.key !== " " && e.key !== "Enter") return;
    e.preventDefault();
    show(root, all[i], true, true);
  });
  // #log, #tab-log or the id of something inside a panel (#resize) opens that tab
  function fromHash() {
    const id = decodeURIComponent(window.location.hash.slice(1));
    if (!id) return;
    document.querySelectorAll("[data-tabs]").forEach((root) => {
      const byKey = tabsOf(root).find((t) => t.dataset.tab === id || t.id === id);
      if (byKey) return show(root, byKey, false, false);
      const target = document.getElementById(id);
      const panel = target && target.closest('[role="tabpanel"]');
      const tab = panel && root.contains(panel) && tabsOf(root).find((t) => t.getAttribute("aria-controls") === panel.id);
      if (tab) {
        show(root, tab, false, false);
        target.scrollIntoView({ block: "start" });
      }
    });
  }
  document.addEventListener("DOMContentLoaded", fromHash);
  window.addEventListener("hashchange", fromHash);

  // A VM's panel was pushed (its state changed): re-read the tabs already loaded that show
  // its history (the log).
  document.addEventListener("htmx:oobAfterSwap", (e) => {
    const el = e.target;
    if (!el || !/^vm-\d+-panel$/.test(el.id || "")) return;
    document.querySelectorAll("[data-loaded][hx-trigger~='nephele:refresh']").forEach((x) => htmx.trigger(x, "nephele:refresh"));
  });
})();
