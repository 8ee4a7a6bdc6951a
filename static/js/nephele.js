// Live indicator for the websocket, and a short flash on rows that changed.
document.addEventListener("htmx:wsOpen", () => document.getElementById("live-indicator")?.classList.add("on"));
document.addEventListener("htmx:wsClose", () => document.getElementById("live-indicator")?.classList.remove("on"));
document.addEventListener("htmx:oobAfterSwap", (e) => {
  const el = e.detail.target;
  if (el && el.tagName === "TR") { el.classList.remove("flash"); void el.offsetWidth; el.classList.add("flash"); }
});
