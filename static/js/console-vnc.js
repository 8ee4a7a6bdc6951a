// The graphical console (noVNC, vendored as ES modules): RFB over a binary websocket to
// compute/console_consumers.py, which bridges it to the VM's VNC server on its host's
// loopback. Opens when its tab is shown (or Connect is pressed), with a fresh one-time token.
import RFB from "../vendor/novnc/core/rfb.js";

const el = document.getElementById("vnc-screen");
const connectButton = document.getElementById("vnc-connect");
const cad = document.getElementById("vnc-cad");
let rfb = null;

function helpers() {
  return window.nepheleConsole; // static/js/console.js (a classic script, run before modules)
}

async function connect() {
  const h = helpers();
  if (rfb || !h) return;
  el.dataset.state = "connecting";
  h.status("vnc-status", "Connecting…");
  let t;
  try {
    t = await h.ticket(el, "vnc");
  } catch (err) {
    el.dataset.state = "closed";
    h.status("vnc-status", "Cannot open the console: " + err.message, "bad");
    return;
  }
  rfb = new RFB(el, h.wsUrl(t.url), { wsProtocols: ["binary"] });
  rfb.scaleViewport = true;
  rfb.resizeSession = false;
  rfb.addEventListener("connect", () => {
    el.dataset.state = "connected";
    h.status("vnc-status", "Connected", "ok");
    rfb.focus();
  });
  rfb.addEventListener("disconnect", (e) => {
    el.dataset.state = "closed";
    rfb = null;
    h.status("vnc-status", e.detail.clean ? "Disconnected." : "The connection was lost.", e.detail.clean ? "" : "bad");
  });
}

if (el) {
  if (connectButton) connectButton.addEventListener("click", connect);
  if (cad) cad.addEventListener("click", () => rfb && rfb.sendCtrlAltDel());
  document.addEventListener("nephele:console-tab", (e) => {
    if (e.detail === "pane-vnc") connect();
  });
  const pane = document.getElementById("pane-vnc");
  if (pane && !pane.hidden) connect();
}
