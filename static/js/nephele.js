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
  let received = 0; // messages on the current socket, acknowledged every ACK_EVERY
  const ACK_EVERY = 16; // compute/consumers.py: a socket that stops acknowledging is closed (1013)
  document.addEventListener("htmx:wsOpen", () => {
    received = 0;
    setLive(true);
    catchUp(!wasOpen);
    wasOpen = true;
  });
  // Every message is counted and acknowledged, so the server knows this page still reads.
  // {"type": "refetch"}: the server's subscription had a gap and pushes were lost — re-read
  // what the page shows instead of swapping the message in.
  document.addEventListener("htmx:wsBeforeMessage", (e) => {
    received += 1;
    const socket = e.detail.socketWrapper;
    if (received % ACK_EVERY === 0 && socket) socket.sendImmediately(JSON.stringify({ type: "ack", n: received }));
    const text = e.detail.message;
    if (typeof text !== "string" || text.charAt(0) !== "{") return;
    e.preventDefault();
    let msg = null;
    try {
      msg = JSON.parse(text);
    } catch (err) {
      return;
    }
    if (msg && msg.type === "refetch") refetch();
  });
  // The server closes a socket with 4013 when the page fell behind (its queue was full) and
  // 4011 when it could not subscribe it; htmx reconnects by itself only on 1006/1011–1013.
  document.addEventListener("htmx:wsClose", (e) => {
    setLive(false);
    const code = e.detail && e.detail.event ? e.detail.event.code : 0;
    const socket = e.detail && e.detail.socketWrapper;
    if ((code === 4011 || code === 4013) && socket) setTimeout(() => socket.reconnect(), 500 + Math.random() * 1500);
  });
  document.addEventListener("htmx:wsError", () => setLive(false));

  // Pushes sent before the socket joined its groups (between the page's render and the socket's
  // open) or while it was down are missed. On the first open, re-read what is in flux (PENDING,
  // transient, an operation running); after a reconnect, or when much is in flux, the regions.
  function catchUp(first) {
    const flux = document.querySelectorAll("[data-in-flux]");
    if (first && flux.length <= 20) flux.forEach((el) => htmx.trigger(el, "nephele:refresh"));
    else refreshLiveRegions();
  }

  // After a gap in the server's pushes: re-read the live regions, and whatever is in flux
  // outside them (a row on the dashboard), as after a reconnect.
  function refetch() {
    refreshLiveRegions();
    document.querySelectorAll("[data-in-flux]").forEach((el) => {
      if (!el.closest("[data-live-region]")) htmx.trigger(el, "nephele:refresh");
    });
    document.dispatchEvent(new CustomEvent("nephele:refetched"));
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
