// The upscaling page: pick or drop an image, send it to POST v1/upscale as a form upload,
// show upload progress then the wait, compare before/after with a slider, offer the download.
// Plain JavaScript, no libraries, no network but this service (URLs are relative, so the page
// also works behind a path prefix).
"use strict";

const $ = (id) => document.getElementById(id);
const EXT = { "image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/tiff": "tif", "image/bmp": "bmp" };
let info = null;       // GET v1/info: models, limits, detail levels
let file = null;       // the chosen File
let urls = [];         // object URLs to release on the next run

function show(id, on) { $(id).hidden = !on; }

function fail(message) {
  $("error").textContent = message;
  show("error", true);
  show("progress", false);
  $("go").disabled = !file;
}

async function loadInfo() {
  try {
    const r = await fetch("v1/info");
    info = await r.json();
  } catch (e) {
    fail("The service did not answer: " + e);
    return;
  }
  const select = $("model");
  for (const m of info.models) {
    const o = document.createElement("option");
    o.value = o.textContent = m;
    o.selected = m === info.default_model;
    select.appendChild(o);
  }
  if (info.detail) {  // the slider steps through the levels the service offers (GET v1/info)
    const d = $("detail"), levels = info.detail.levels;
    d.min = 0; d.max = levels.length - 1; d.step = 1;
    d.value = Math.max(0, levels.indexOf(info.detail.default));
    showDetail();
  }
  select.addEventListener("change", showDetail);
}

function detailLevel() { return info.detail.levels[Number($("detail").value)]; }

function showDetail() {  // detail blends srgan with srresnet: offered with the srgan model only
  const on = Boolean(info && info.detail) && $("model").value === info.detail.model;
  if (on) $("detail-value").textContent = detailLevel();
  show("detail-row", on);
}

function choose(f) {
  if (!f) return;
  show("error", false);
  if (info && f.size > info.limits.max_body_bytes) {
    fail(`${f.name} is ${(f.size / 1048576).toFixed(1)} MiB; this service takes up to ` +
         `${(info.limits.max_body_bytes / 1048576).toFixed(0)} MiB.`);
    return;
  }
  file = f;
  $("picked").textContent = `${f.name} (${(f.size / 1024).toFixed(0)} KiB)`;
  $("go").disabled = false;
}

function upscale(event) {
  event.preventDefault();
  if (!file) return;
  urls.forEach(URL.revokeObjectURL);
  urls = [];
  show("error", false);
  show("result", false);
  show("progress", true);
  $("go").disabled = true;
  const bar = $("bar"), status = $("status");
  bar.value = 0;
  status.textContent = "uploading…";

  const query = new URLSearchParams({ model: $("model").value });
  if ($("format").value) query.set("format", $("format").value);
  if (!$("detail-row").hidden) query.set("detail", detailLevel());
  const form = new FormData();
  form.append("file", file, file.name);

  const xhr = new XMLHttpRequest();
  xhr.open("POST", "v1/upscale?" + query);
  xhr.responseType = "blob";
  let timer = null;
  const started = performance.now();
  xhr.upload.onprogress = (e) => {
    if (e.lengthComputable) bar.value = (100 * e.loaded) / e.total;
  };
  xhr.upload.onload = () => {  // uploaded: now the server works; show the time it takes
    bar.removeAttribute("value");
    const tick = () => { status.textContent = `upscaling… ${((performance.now() - started) / 1000).toFixed(0)} s`; };
    tick();
    timer = setInterval(tick, 500);
  };
  xhr.onerror = () => { clearInterval(timer); fail("Network error: the service could not be reached."); };
  xhr.onload = async () => {
    clearInterval(timer);
    if (xhr.status !== 200) {
      let message = `HTTP ${xhr.status}`;
      try { message = JSON.parse(await xhr.response.text()).error || message; } catch (e) { /* not JSON */ }
      if (xhr.status === 503 && xhr.getResponseHeader("Retry-After")) {
        message += ` (try again in ${xhr.getResponseHeader("Retry-After")} s)`;
      }
      fail(message);
      return;
    }
    done(xhr, (performance.now() - started) / 1000);
  };
  xhr.send(form);
}

function done(xhr, seconds) {
  const blob = xhr.response;
  const after = URL.createObjectURL(blob), before = URL.createObjectURL(file);
  urls.push(after, before);
  $("after").src = after;
  $("before").src = before;
  const ext = EXT[blob.type] || "png";
  const stem = file.name.replace(/\.[^.]*$/, "") || "image";
  const link = $("download");
  link.href = after;
  link.download = `${stem}_x4.${ext}`;
  const w = xhr.getResponseHeader("X-Width"), h = xhr.getResponseHeader("X-Height");
  $("info").textContent = `${w}×${h}, ${(blob.size / 1024).toFixed(0)} KiB, ${seconds.toFixed(1)} s`;
  $("notes").textContent = xhr.getResponseHeader("X-Notes") || "";
  setSlider(50);
  show("progress", false);
  show("result", true);
  $("go").disabled = false;
}

function setSlider(v) {
  $("slider").value = v;
  $("before").style.clipPath = `inset(0 ${100 - v}% 0 0)`;
  $("divider").style.left = `${v}%`;
}

const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  choose(e.dataTransfer.files[0]);
});
drop.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") $("file").click(); });
$("file").addEventListener("change", (e) => choose(e.target.files[0]));
$("options").addEventListener("submit", upscale);
$("slider").addEventListener("input", (e) => setSlider(Number(e.target.value)));
$("detail").addEventListener("input", showDetail);
loadInfo();
