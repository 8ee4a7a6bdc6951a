// Nephele console behaviour. Everything works without it; it adds the live indicator, the
// catch-up after a websocket reconnect, and small conveniences for menus and drawers.
(function () {
  "use strict";
  let wasOpen = false;

  // ---- live state -------------------------------------------------------------------------
  // The server pushes re-rendered partials over /ws/live/ (htmx ws extension, hx-swap-oob).
  // window.nepheleLive gates the polling fallback: an element marked data-poll polls
  // (hx-trigger="every 10s, nephele:refresh") only while the socket is down. Not an hx-trigger
  // filter ("[!window.nepheleLive]"): under the CSP htmx evaluates no expression, so a filter
  // logs htmx:evalDisallowedError and lets every poll through.
  window.nepheleLive = false;
  document.addEventListener("htmx:confirm", (e) => {
    const el = e.detail.elt;
    // a poll has no triggering event; nephele:refresh (a catch-up) always goes
    if (window.nepheleLive && !e.detail.triggeringEvent && el && el.hasAttribute("data-poll")) e.preventDefault();
  });
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

  // ---- failed actions: a row that arrives carrying a new failure raises a toast -------------
  // A VM row with data-failed="<operation seq>" shows its last action failed (the badge is in
  // the row itself); the toast is raised once per failure, only for what changed after the
  // page was drawn (a failure already on the page when it loaded has its badge, no toast).
  const seenFailures = new Map();
  function failureKey(el) {
    return el.dataset.failed + "|" + (el.dataset.failedMsg || "");
  }
  function noteFailures(root, announce) {
    const els = root.matches && root.matches("[data-failed]") ? [root] : [];
    root.querySelectorAll("[data-failed]").forEach((el) => els.push(el));
    els.forEach((el) => {
      if (!el.id) return;
      const key = failureKey(el);
      if (seenFailures.get(el.id) === key) return;
      seenFailures.set(el.id, key);
      if (announce) toast(el.dataset.failedMsg || "An action failed.", "error");
    });
  }
  // One message in the page's message area (errors stay until replaced; successes fade).
  function toast(text, level) {
    const box = document.getElementById("messages");
    if (!box) return;
    const li = document.createElement("li");
    li.className = level;
    if (level === "error") li.setAttribute("role", "alert");
    li.textContent = text;
    box.appendChild(li);
    if (level === "success") fadeSuccesses(box);
  }
  window.nepheleToast = toast;
  document.addEventListener("DOMContentLoaded", () => noteFailures(document, false));
  document.addEventListener("htmx:load", (e) => {
    const el = e.detail && e.detail.elt;
    if (el && el !== document.body && el.nodeType === 1) noteFailures(el, true);
  });

  // ---- out-of-band parts the page does not show are dropped before htmx swaps them ----------
  // The server sends a VM's row and its panel, a host's row and panel, new events… to every
  // page of a project; a page shows only some of them, and htmx logs oobErrorNoTarget for the
  // others. This extension (hx-ext on <body>) removes an out-of-band element whose target is
  // not on the page, for websocket frames and htmx answers alike.
  function oobTarget(el) {
    const how = el.getAttribute("hx-swap-oob") || el.getAttribute("data-hx-swap-oob") || "";
    const colon = how.indexOf(":");
    if (colon >= 0) return how.slice(colon + 1).trim();
    return el.id ? "#" + CSS.escape(el.id) : null;
  }
  function present(selector) {
    try {
      return document.querySelector(selector) !== null;
    } catch (err) {
      return true; // htmx's extended selectors: leave them to htmx
    }
  }
  function dropAbsentOob(text) {
    if (typeof text !== "string" || text.indexOf("swap-oob") < 0) return text;
    const tpl = document.createElement("template");
    tpl.innerHTML = text;
    let dropped = false;
    const prune = (root) => {
      Array.from(root.children).forEach((el) => {
        if (el.tagName === "TEMPLATE") {
          prune(el.content);
          if (!el.content.children.length) el.remove();
          return;
        }
        if (!el.hasAttribute("hx-swap-oob") && !el.hasAttribute("data-hx-swap-oob")) return;
        const sel = oobTarget(el);
        if (sel && !present(sel)) {
          el.remove();
          dropped = true;
        }
      });
    };
    prune(tpl.content);
    return dropped ? tpl.innerHTML : text;
  }
  // nephele.js is deferred after htmx.min.js, so htmx is defined here, before it reads the page
  if (window.htmx) htmx.defineExtension("present-oob", { transformResponse: (text) => dropAbsentOob(text) });

  // ---- narrow screens: the Menu button shows and hides the main navigation ------------------
  document.addEventListener("click", (e) => {
    const btn = e.target.closest("button.nav-toggle");
    if (!btn) return;
    const open = btn.getAttribute("aria-expanded") !== "true";
    btn.setAttribute("aria-expanded", String(open));
    btn.closest(".sidebar")?.classList.toggle("nav-open", open);
  });

  // ---- copy buttons: <button class="copy" data-copy="<id>" hidden> copies that element's text --
  // (hidden until here: without JavaScript, or without a clipboard, there is nothing to press)
  document.addEventListener("DOMContentLoaded", () => {
    if (!navigator.clipboard) return;
    document.querySelectorAll("button.copy[data-copy]").forEach((b) => (b.hidden = false));
  });
  document.addEventListener("click", (e) => {
    const btn = e.target.closest("button.copy[data-copy]");
    if (!btn) return;
    const src = document.getElementById(btn.dataset.copy);
    if (!src || !navigator.clipboard) return;
    navigator.clipboard.writeText(src.textContent.trim()).then(
      () => {
        btn.classList.add("copied");
        btn.textContent = "Copied";
      },
      () => toast("The browser refused to copy; select the text and copy it by hand.", "error"),
    );
  });

  // ---- no inline handlers (the CSP forbids them): behaviour comes from data attributes -------
  // <select data-autosubmit> submits its form when changed
  document.addEventListener("change", (e) => {
    const el = e.target.closest("[data-autosubmit]");
    if (el && el.form) el.form.submit();
  });

  // ---- confirmations: one dialog (templates/portal/_confirm_dialog.html) for every ----------
  // destructive action. hx-confirm="…" on an htmx form, data-confirm="…" on a plain one; the
  // element may add data-confirm-title, data-confirm-ok and data-confirm-type (the name to type).
  function askConfirm(el, text, proceed) {
    const dlg = document.getElementById("confirm-dialog");
    if (!dlg || typeof dlg.showModal !== "function") {
      if (window.confirm(text)) proceed(); // pages without the dialog (logged out)
      return;
    }
    const typed = el.dataset.confirmType || "";
    // data-confirm-from="<id of a select in the form>": "{}" in the text names what is chosen there
    const from = el.dataset.confirmFrom ? document.getElementById(el.dataset.confirmFrom) : null;
    if (from && from.selectedOptions && from.selectedOptions.length) text = text.replace("{}", from.selectedOptions[0].text);
    const ok = document.getElementById("confirm-ok");
    const input = document.getElementById("confirm-input");
    document.getElementById("confirm-title").textContent = el.dataset.confirmTitle || "Are you sure?";
    document.getElementById("confirm-text").textContent = text;
    document.getElementById("confirm-name").textContent = typed;
    document.getElementById("confirm-typed").hidden = !typed;
    ok.textContent = el.dataset.confirmOk || "Confirm";
    input.value = "";
    ok.disabled = !!typed;
    dlg.nepheleProceed = proceed;
    dlg.nepheleTyped = typed;
    dlg.showModal();
    (typed ? input : ok).focus();
  }
  window.nepheleConfirm = askConfirm; // for other scripts (static/js/compute.js: bulk actions)
  document.addEventListener("DOMContentLoaded", () => {
    const dlg = document.getElementById("confirm-dialog");
    if (!dlg) return;
    const input = document.getElementById("confirm-input");
    const ok = document.getElementById("confirm-ok");
    input.addEventListener("input", () => {
      ok.disabled = !!dlg.nepheleTyped && input.value.trim() !== dlg.nepheleTyped;
    });
    document.getElementById("confirm-cancel").addEventListener("click", () => dlg.close("cancel"));
    document.getElementById("confirm-form").addEventListener("submit", (e) => {
      e.preventDefault();
      if (ok.disabled) return;
      const proceed = dlg.nepheleProceed;
      dlg.nepheleProceed = null;
      dlg.close("ok");
      if (proceed) proceed();
    });
    dlg.addEventListener("close", () => {
      dlg.nepheleProceed = null;
    });
  });
  // htmx forms: htmx asks through this event; the dialog answers instead of window.confirm
  document.addEventListener("htmx:confirm", (e) => {
    if (!e.detail.question) return;
    e.preventDefault();
    const el = e.detail.elt.closest("[hx-confirm]") || e.detail.elt;
    askConfirm(el, e.detail.question, () => e.detail.issueRequest(true));
  });
  // plain forms: the submit waits for the dialog, then goes again (once) with the same button
  document.addEventListener("submit", (e) => {
    const form = e.target.closest("form[data-confirm]");
    if (!form || form.hasAttribute("hx-confirm")) return;
    if (form.dataset.confirmed === "1") {
      delete form.dataset.confirmed;
      return;
    }
    e.preventDefault();
    const submitter = e.submitter || null;
    askConfirm(form, form.dataset.confirm, () => {
      form.dataset.confirmed = "1";
      form.requestSubmit(submitter);
    });
  }, true);
})();
