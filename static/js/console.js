// The console page (templates/compute/vm_console.html): the serial terminal (xterm.js) and the
// console tabs. The websocket opens with a one-time token asked for just before
// (vms/<id>/console/token/); compute/console_consumers.py serves it. Binary frames carry the
// terminal's bytes both ways; a text frame {"type": "resize"} tells the server the size.
(function () {
  "use strict";

  const CLOSED = {
    4003: "Refused: the token was not valid for you and this VM, or you may not open its console.",
    4004: "Ended: your access was revoked or the VM is no longer running.",
    4014: "The console could not be reached on the VM's host.",
  };

  async function ticket(el, kind) {
    const body = new URLSearchParams({ kind: kind });
    const r = await fetch(el.dataset.tokenUrl, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": el.dataset.csrf },
    });
    let data = {};
    try {
      data = await r.json();
    } catch (err) {
      data = {};
    }
    if (!r.ok) throw new Error(data.error || "HTTP " + r.status);
    return data;
  }

  function wsUrl(path) {
    return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + path;
  }

  function status(id, text, level) {
    const el = document.getElementById(id);
    if (!el) return;
    el.textContent = text;
    el.className = "console-status" + (level ? " " + level : "");
  }

  window.nepheleConsole = { ticket: ticket, wsUrl: wsUrl, status: status, CLOSED: CLOSED };

  // ---- tabs ---------------------------------------------------------------------------------
  function initTabs() {
    const tabs = Array.from(document.querySelectorAll(".console-tab"));
    tabs.forEach((tab) =>
      tab.addEventListener("click", () => {
        tabs.forEach((t) => {
          const on = t === tab;
          t.setAttribute("aria-selected", on ? "true" : "false");
          const pane = document.getElementById(t.dataset.pane);
          if (pane) pane.hidden = !on;
        });
        document.dispatchEvent(new CustomEvent("nephele:console-tab", { detail: tab.dataset.pane }));
      }),
    );
  }

  // ---- serial -------------------------------------------------------------------------------
  function initSerial() {
    const el = document.getElementById("serial-terminal");
    if (!el || typeof Terminal === "undefined") return;
    const term = new Terminal({ cursorBlink: true, scrollback: 5000, fontSize: 14, convertEol: false });
    const fit = new FitAddon.FitAddon();
    term.loadAddon(fit);
    term.open(el);
    fit.fit();
    const encoder = new TextEncoder();
    const again = document.getElementById("serial-reconnect");
    let ws = null;

    function sendSize() {
      const size = document.getElementById("serial-size");
      if (size) size.textContent = "stty rows " + term.rows + " cols " + term.cols;
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "resize", cols: term.cols, rows: term.rows }));
    }

    term.onData((data) => {
      if (ws && ws.readyState === WebSocket.OPEN) ws.send(encoder.encode(data));
    });
    term.onResize(sendSize);
    window.addEventListener("resize", () => fit.fit());
    document.addEventListener("nephele:console-tab", (e) => {
      if (e.detail === "pane-serial") {
        fit.fit();
        term.focus();
      }
    });

    async function connect() {
      if (again) again.hidden = true;
      el.dataset.state = "connecting";
      status("serial-status", "Connecting…");
      let t;
      try {
        t = await ticket(el, "serial");
      } catch (err) {
        el.dataset.state = "closed";
        status("serial-status", "Cannot open the console: " + err.message, "bad");
        if (again) again.hidden = false;
        return;
      }
      ws = new WebSocket(wsUrl(t.url));
      ws.binaryType = "arraybuffer";
      let opened = false;
      ws.onopen = () => {
        opened = true;
        el.dataset.state = "connected";
        status("serial-status", "Connected", "ok");
        sendSize();
        term.focus();
      };
      ws.onmessage = (e) => {
        if (typeof e.data === "string") {
          try {
            const msg = JSON.parse(e.data);
            if (msg.type === "error") status("serial-status", msg.message, "bad");
          } catch (err) {
            /* not ours */
          }
          return;
        }
        term.write(new Uint8Array(e.data));
      };
      ws.onclose = (e) => {
        el.dataset.state = "closed";
        // a socket refused at its handshake never opens (the browser reports 1006, not 4003)
        const why = opened ? CLOSED[e.code] || "Disconnected." : CLOSED[4003];
        status("serial-status", why, opened && e.code === 1000 ? "" : "bad");
        if (again) again.hidden = false;
      };
    }

    if (again) again.addEventListener("click", connect);
    connect();
  }

  document.addEventListener("DOMContentLoaded", () => {
    initTabs();
    initSerial();
  });
})();
