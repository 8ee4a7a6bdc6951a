/* Image upload: create the image (POST /api/v1/images/), then send the file in slices with
   Content-Range (PUT /api/v1/images/{id}/upload/); the last slice finalises it on the server.
   The browser never reads the whole file: File.slice hands each piece to fetch. A failed slice is
   retried from the offset the server reports (uploaded_bytes). Vanilla JS, no dependencies. */
(function () {
  "use strict";

  function csrf(form) {
    var el = form.querySelector("input[name=csrfmiddlewaretoken]");
    return el ? el.value : "";
  }

  function say(text, kind) {
    var box = document.getElementById("up-message");
    box.className = "alert " + (kind || "info");
    box.textContent = text;
  }

  function show(done, total) {
    var pct = total ? Math.floor((100 * done) / total) : 0;
    document.getElementById("up-progress").hidden = false;
    document.getElementById("up-bar").style.width = pct + "%";
    document.getElementById("up-pct").textContent = pct + "%";
    document.querySelector("#up-progress [role=progressbar]").setAttribute("aria-valuenow", String(pct));
  }

  function detail(body) {
    if (!body) return "request failed";
    if (body.detail) return body.detail;
    var keys = Object.keys(body);
    return keys.length ? keys[0] + ": " + [].concat(body[keys[0]]).join(" ") : "request failed";
  }

  async function api(url, opts, token) {
    opts.headers = Object.assign({ "X-CSRFToken": token }, opts.headers || {});
    opts.credentials = "same-origin";
    var resp = await fetch(url, opts);
    var body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    return { status: resp.status, body: body };
  }

  async function upload(form) {
    var file = form.querySelector("#up-file").files[0];
    if (!file) { say("Choose a file first.", "error"); return; }
    var token = csrf(form);
    var chunk = parseInt(form.dataset.chunk, 10) || 8388608;
    var meta = {
      project: parseInt(form.dataset.project, 10),
      name: form.querySelector("#up-name").value,
      type: form.querySelector("#up-type").value,
      description: form.querySelector("#up-desc").value,
      persistent: form.querySelector("input[name=persistent]").checked,
      size_bytes: file.size,
      sha256: form.querySelector("#up-sha").value.trim().toLowerCase(),
      filename: file.name
    };
    var ds = form.querySelector("#up-ds");
    if (ds && ds.value) meta.datastore = parseInt(ds.value, 10);
    var created = await api(form.dataset.api, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(meta)
    }, token);
    if (created.status !== 201) { say(detail(created.body), "error"); return; }
    var id = created.body.id, url = form.dataset.api + id + "/upload/";
    var start = 0, failures = 0, last = created.body;
    while (start < file.size) {
      var end = Math.min(start + chunk, file.size);
      var r;
      try {
        r = await api(url, {
          method: "PUT",
          headers: { "Content-Type": "application/octet-stream", "Content-Range": "bytes " + start + "-" + (end - 1) + "/" + file.size },
          body: file.slice(start, end)
        }, token);
      } catch (e) {
        r = { status: 0, body: null };
      }
      if (r.status === 200) {
        last = r.body; start = end; failures = 0; show(start, file.size);
        continue;
      }
      if (r.status === 400 || r.status === 403 || r.status === 404 || ++failures > 3) {
        say("Upload refused: " + detail(r.body), "error");
        return;
      }
      // resume from what the server has
      var now = await api(form.dataset.api + id + "/", { method: "GET" }, token);
      if (now.status === 200) start = now.body.uploaded_bytes;
    }
    if (last.state === "ready") {
      say("Uploaded: " + last.format + ", " + last.virtual_size_bytes + " bytes virtual.", "success");
      window.location.href = form.dataset.detail + id + "/";
    } else {
      say("Upload ended in state " + last.state + ": " + (last.state_message || ""), "error");
    }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var form = document.getElementById("image-upload-form");
    if (!form) return;
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var button = document.getElementById("up-start");
      button.disabled = true;
      upload(form).finally(function () { button.disabled = false; });
    });
  });
})();
