// Nephele console behaviour. Everything works without it; it adds the live indicator, the
// catch-up after a websocket reconnect, and small conveniences for menus and drawers.
(function () {
  "use strict";
  let wasOpen = false;

  // ---- live state -------------------------------------------------------------------------
  // The server pushes re-rendered partials over /ws/live/ (htmx ws extension, hx-swap-oob).
  // window.nepheleLive gates the polling fallback (hx-trigger="every 10s [!window.nepheleLive]").
  window.nepheleLive = false;
  function setLive(on) {
    window.nepheleLive = on;
    const el = document.getElementById("live-indicator");
    if (el) {
      el.classList.toggle("on", on);
      el.title = on ? "Live: changes appear as they happen" : "Offline: reconnecting; pages poll meanwhile";
    }
  }
  document.addEventListener("htmx:wsOpen", () => {
    setLive(true);
    catchUp(!wasOpen);
    wasOpen = true;
  });
  document.addEventListener("htmx:wsClose", () => setLive(false));
  document.addEventListener("htmx:wsError", () => setLive(false));

  // Pushes sent before the socket joined its groups (between the page's render and the socket's
  // open) or while it was down are missed. On the first open, re-read what is in flux (PENDING,
  // transient, an operation running); after a reconnect, or when much is in flux, the regions.
  function catchUp(first) {
    const flux = document.querySelectorAll("[data-in-flux]");
    if (first && flux.length <= 20) flux.forEach((el) => htmx.trigger(el, "nephele:refresh"));
    else refreshLiveRegions();
  }

  // Re-read the page's live regions (VM rows, a VM's panel, host rows) in one request each.
  function refreshLiveRegions() {
    document.querySelectorAll("[data-live-region][id]").forEach((el) => {
      const sel = "#" + CSS.escape(el.id);
      htmx.ajax("GET", window.location.href, { target: sel, select: sel, swap: "outerHTML" });
    });
  }

  // A row or panel that changed flashes once.
  // (the event fires on the new element; detail.target is the one it replaced)
  document.addEventListener("htmx:oobAfterSwap", (e) => {
    const el = e.target;
    if (!el || !el.isConnected || !(el.tagName === "TR" || el.classList.contains("card"))) return;
    el.classList.remove("flash");
    void el.offsetWidth;
    el.classList.add("flash");
  });

  // ---- menus: one open at a time; Escape or a click elsewhere closes them -------------------
  function closeMenus(except) {
    document.querySelectorAll("details.more[open], details.usermenu[open]").forEach((d) => {
      if (d !== except && !d.contains(except)) d.removeAttribute("open");
    });
  }
  document.addEventListener("click", (e) => {
    const inside = e.target.closest("details.more, details.usermenu");
    closeMenus(inside);
    // a menu item that posts closes its menu (the row is re-rendered anyway)
    if (e.target.closest(".menu button, .menu a")) closeMenus(null);
  });
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    const open = document.querySelector("details.more[open], details.usermenu[open]");
    if (open) {
      open.removeAttribute("open");
      open.querySelector("summary")?.focus();
    }
  });

  // ---- drawers: "New VM" and friends open their <details> in place --------------------------
  document.addEventListener("click", (e) => {
    const link = e.target.closest("[data-open]");
    if (!link) return;
    const box = document.getElementById(link.dataset.open);
    if (!box) return;
    e.preventDefault();
    box.open = true;
    box.scrollIntoView({ behavior: "smooth", block: "start" });
    box.querySelector("input:not([type=hidden]), select, textarea")?.focus({ preventScroll: true });
  });

  // ---- messages: successes fade after a while; errors stay until replaced -------------------
  function fadeSuccesses(root) {
    root.querySelectorAll(".messages li.success").forEach((li) => {
      setTimeout(() => li.classList.add("fade"), 6000);
      setTimeout(() => li.remove(), 6600);
    });
  }
  document.addEventListener("DOMContentLoaded", () => fadeSuccesses(document));
  document.addEventListener("htmx:oobAfterSwap", (e) => {
    if (e.target && e.target.id === "messages") fadeSuccesses(e.target);
  });

  // ---- no inline handlers (the CSP forbids them): behaviour comes from data attributes -------
  // <select data-autosubmit> submits its form when changed
  document.addEventListener("change", (e) => {
    const el = e.target.closest("[data-autosubmit]");
    if (el && el.form) el.form.submit();
  });
  // <form data-confirm="…"> asks before a plain (non-htmx) destructive post
  document.addEventListener("submit", (e) => {
    const form = e.target.closest("form[data-confirm]");
    if (form && !window.confirm(form.dataset.confirm)) e.preventDefault();
  }, true);
})();
