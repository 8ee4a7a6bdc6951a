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

// ---- the VM list: selection, bulk actions, live state chips ---------------------------------
(function () {
  "use strict";
  function boxes(formId) {
    return Array.from(document.querySelectorAll('input.row-select[form="' + formId + '"]'));
  }
  function update(form) {
    const n = boxes(form.id).filter((b) => b.checked).length;
    const label = form.querySelector("[data-bulk-count]");
    if (label) label.textContent = n ? n + " selected:" : "Select VMs for an action on all of them:";
    form.toggleAttribute("data-none", n === 0);
    const all = document.querySelector('[data-select-all="' + form.id + '"]');
    if (all) {
      const total = boxes(form.id).length;
      all.checked = total > 0 && n === total;
      all.indeterminate = n > 0 && n < total;
    }
  }
  function init() {
    document.querySelectorAll("[data-select-all]").forEach((all) => all.removeAttribute("hidden"));
    const form = document.getElementById("vm-bulk");
    if (form) update(form);
  }
  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("change", (e) => {
    const all = e.target.closest("[data-select-all]");
    if (all) boxes(all.dataset.selectAll).forEach((b) => { b.checked = all.checked; });
    const form = document.getElementById(all ? all.dataset.selectAll : e.target.getAttribute("form") || "");
    if (form && form.id === "vm-bulk") update(form);
  });
  // no selection: nothing to post; a destructive action asks first (then the server need not)
  document.addEventListener("click", (e) => {
    const button = e.target.closest("#vm-bulk button[name=action]");
    if (!button) return;
    const form = button.form, n = boxes(form.id).filter((b) => b.checked).length;
    if (n === 0) {
      e.preventDefault();
      const label = form.querySelector("[data-bulk-count]");
      if (label) label.textContent = "Select at least one VM first:";
      return;
    }
    form.querySelectorAll("input[name=confirmed]").forEach((i) => i.remove());
    if (!button.dataset.bulkConfirm) return;
    if (button.dataset.confirmedOnce === "1") { // asked and answered: post it, saying so
      delete button.dataset.confirmedOnce;
      const ok = document.createElement("input");
      ok.type = "hidden";
      ok.name = "confirmed";
      ok.value = "1";
      form.appendChild(ok);
      return;
    }
    e.preventDefault();
    const text = button.dataset.bulkConfirm + " " + n + " VM" + (n === 1 ? "" : "s") + "? This cannot be undone.";
    const proceed = () => { button.dataset.confirmedOnce = "1"; button.click(); };
    // the portal's one confirmation dialog (static/js/nephele.js), the browser's where it is absent
    if (window.nepheleConfirm) window.nepheleConfirm(button, text, proceed);
    else if (window.confirm(text)) proceed();
  });
  // rows re-rendered (an action's answer, a push): keep their checkboxes as they were
  const checked = new Set();
  document.addEventListener("htmx:oobBeforeSwap", (e) => {
    const old = e.detail && e.detail.target;
    const box = old && old.querySelector && old.querySelector("input.row-select");
    if (box && box.checked) checked.add(box.value);
  });
  document.addEventListener("htmx:oobAfterSwap", (e) => {
    const el = e.target;
    if (!el || el.tagName !== "TR") return;
    const box = el.querySelector("input.row-select");
    if (box && checked.delete(box.value)) box.checked = true;
    const form = document.getElementById("vm-bulk");
    if (form) update(form);
  });
  // a VM's state was pushed: the state chips' counts are re-read (debounced by htmx's delay)
  document.addEventListener("htmx:wsAfterMessage", (e) => {
    const text = e.detail && e.detail.message;
    if (typeof text === "string" && /<tr id="vm-\d+"/.test(text)) document.body.dispatchEvent(new CustomEvent("nephele:vm-changed"));
  });
  document.addEventListener("htmx:oobAfterSwap", (e) => {
    const el = e.target;
    if (el && el.tagName === "TR" && /^vm-\d+$/.test(el.id || "")) document.body.dispatchEvent(new CustomEvent("nephele:vm-changed"));
  });
})();

// ---- the create-VM form: one step at a time (all of them show without JavaScript) ---------
(function () {
  "use strict";
  function go(form, key, focus) {
    form.querySelectorAll("[data-step]").forEach((s) => { s.hidden = s.dataset.step !== key; });
    form.querySelectorAll("[data-step-link]").forEach((a) => {
      if (a.dataset.stepLink === key) a.setAttribute("aria-current", "step");
      else a.removeAttribute("aria-current");
    });
    const step = form.querySelector('[data-step="' + key + '"]');
    if (focus && step) step.querySelector("input:not([type=hidden]), select, textarea, button")?.focus();
  }
  function init() {
    document.querySelectorAll("form[data-steps]").forEach((form) => {
      // the first step with an error (the server said why), else the first
      let start = "source";
      const steps = Array.from(form.querySelectorAll("[data-step]"));
      steps.forEach((s) => {
        if (s.querySelector(".errorlist")) form.querySelector('[data-step-link="' + s.dataset.step + '"]')?.classList.add("has-error");
      });
      const bad = steps.find((s) => s.querySelector(".errorlist"));
      if (bad) start = bad.dataset.step;
      go(form, start, false);
    });
  }
  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("click", (e) => {
    const btn = e.target.closest("form[data-steps] [data-step-go], form[data-steps] [data-step-link]");
    if (!btn) return;
    e.preventDefault();
    go(btn.closest("form"), btn.dataset.stepGo || btn.dataset.stepLink, true);
  });
})();

// ---- the create form's source: only the template's or the image's fields show -------------
(function () {
  "use strict";
  function apply(form) {
    const chosen = form.querySelector("input[name=source]:checked");
    const source = chosen ? chosen.value : "template";
    form.querySelectorAll("[data-source]").forEach((el) => { el.hidden = el.dataset.source !== source; });
  }
  document.addEventListener("DOMContentLoaded", () => document.querySelectorAll("form[data-steps]").forEach(apply));
  document.addEventListener("change", (e) => {
    if (e.target.name === "source" && e.target.form) apply(e.target.form);
  });
})();
