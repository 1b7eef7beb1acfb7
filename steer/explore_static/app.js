// steer explore: the page's controls, talking to the steer server that served it.
"use strict";

const $ = (id) => document.getElementById(id);
let info = null;
let walk = null;            // the active walk's description from /api/info
const positions = {};       // slider positions per walk id, so switching walks keeps them

function showError(message) { $("error").textContent = message || ""; }

// The server puts this session's token in the page; every request carries it, so the
// server can tell its own page from any other site the browser has open.
const token = document.querySelector('meta[name="steer-token"]').content;
const withToken = (headers) => Object.assign({ "X-Steer-Token": token }, headers || {});

// One loader per image. At most one request is in flight; while it runs only the newest
// wanted URL is kept and sent when the running one returns, so a drag never queues renders.
function makeLoader(img) {
  let busy = false;
  let wanted = null;
  let objectUrl = null;
  async function run(url) {
    busy = true;
    try {
      const response = await fetch(url, { headers: withToken() });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        showError(body.error || response.statusText);
      } else {
        const blob = await response.blob();
        const next = URL.createObjectURL(blob);
        await new Promise((resolve) => { img.onload = resolve; img.onerror = resolve; img.src = next; });
        if (objectUrl) URL.revokeObjectURL(objectUrl);
        objectUrl = next;
        img.dataset.query = url;  // which settings the shown image is (tests read it)
        // the frame after loading is when it is on screen
        requestAnimationFrame(() => { img.dataset.shownAt = String(performance.now()); });
        showError("");
      }
    } catch (e) {
      showError("the steer server does not answer: " + e);
    }
    busy = false;
    if (wanted !== null) {
      const url2 = wanted;
      wanted = null;
      if (url2 !== img.dataset.query) run(url2);
    }
  }
  return (url) => { if (busy) wanted = url; else run(url); };
}

const loadImage = makeLoader($("image"));
const loadStrip = makeLoader($("strip"));

// -- sliders: a position on the page <-> alpha --------------------------------------------
function alphaAt(position) {
  if (walk.scale === "log") return 2 ** (walk.log2_min + Number(position) * walk.log2_step);
  return Number(position);
}

function positionOf(alpha) {
  if (walk.scale === "log") return String(Math.round((Math.log2(alpha) - walk.log2_min) / walk.log2_step));
  return String(alpha);
}

function formatAlpha(a) {
  return walk.scale === "log" ? "×" + Number(a.toPrecision(3)) : String(Number(a.toFixed(3)));
}

function alphas() {
  return Array.from(document.querySelectorAll("#sliders input")).map((el) => alphaAt(el.value));
}

function buildSliders() {
  const box = $("sliders");
  box.textContent = "";
  const names = walk.sliders === 3 ? ["r", "g", "b"] : ["α"];
  const saved = positions[walk.id];
  names.forEach((name, i) => {
    const row = document.createElement("div");
    row.className = "slider";
    const label = document.createElement("span");
    label.textContent = name;
    const input = document.createElement("input");
    input.type = "range";
    input.id = walk.sliders === 3 ? "alpha-" + name : "alpha";
    if (walk.scale === "log") {
      input.min = "0"; input.max = String(walk.positions); input.step = "1";
    } else {
      input.min = String(walk.min); input.max = String(walk.max); input.step = String(walk.step);
    }
    input.value = saved ? saved[i] : positionOf(walk.identity);
    const out = document.createElement("output");
    const show = () => { out.textContent = formatAlpha(alphaAt(input.value)); };
    show();
    input.addEventListener("input", () => { show(); remember(); refreshImage(); });
    row.append(label, input, out);
    box.append(row);
  });
}

function remember() {
  positions[walk.id] = Array.from(document.querySelectorAll("#sliders input")).map((el) => el.value);
}

// -- requests ------------------------------------------------------------------------------
function fields(withAlpha) {
  const f = { walk: walk.id, seed: $("seed").value.trim(), class: $("class").value };
  if (withAlpha) f.alpha = alphas().map(String).join(",");
  if (info.truncation) f.truncation = $("truncation").value;
  return f;
}

function refreshImage() { loadImage("api/image?" + new URLSearchParams(fields(true))); }

function refreshStrip() {
  loadStrip("api/strip?" + new URLSearchParams(fields(false)));
  const labels = $("strip-labels");
  labels.textContent = "";
  for (const a of walk.show_alphas) {
    const span = document.createElement("span");
    span.textContent = formatAlpha(a) + (walk.sliders === 3 ? " rgb" : "");
    labels.append(span);
  }
}

function refreshAll() { refreshImage(); refreshStrip(); }

function selectWalk(id) {
  walk = info.walks.find((w) => w.id === id);
  $("convention").textContent = `${walk.edit}, ${walk.kind} walk learned on ${walk.learned_on}; α: ${walk.convention}`;
  if (info.truncation) {
    const t = walk.truncation ?? info.truncation.default ?? 1;
    $("truncation").value = String(t);
    $("truncation-value").textContent = $("truncation").value;
  }
  buildSliders();
  refreshAll();
}

async function save() {
  $("saved").textContent = "saving…";
  const response = await fetch("api/save", {
    method: "POST", headers: withToken({ "Content-Type": "application/json" }), body: JSON.stringify(fields(true)),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    $("saved").textContent = "";
    showError(body.error || response.statusText);
    return;
  }
  // names in the save folder (--save-dir): the server never tells a page where files live
  $("saved").textContent = `saved ${body.png} and ${body.json} in the save folder (steer render --settings reads it)`;
  $("saved").dataset.json = body.json;
  $("saved").dataset.png = body.png;
}

async function start() {
  const response = await fetch("api/info", { headers: withToken() });
  info = await response.json();
  $("model").textContent = `${info.model}, ${info.resolution} px`;
  for (const w of info.walks) $("walk").append(new Option(`${w.id} (${w.edit}, ${w.kind})`, w.id));
  if (info.classes.length) {
    for (const c of info.classes) $("class").append(new Option(c.label, c.value));
  } else {
    $("class-row").hidden = true;
  }
  if (info.truncation) {
    $("truncation-row").hidden = false;
    if (info.truncation.kind === "psi") $("truncation").max = "2";
    $("truncation").addEventListener("input", () => {
      $("truncation-value").textContent = $("truncation").value;
      refreshAll();
    });
  }
  $("walk").addEventListener("change", () => selectWalk($("walk").value));
  $("class").addEventListener("change", refreshAll);
  $("seed").addEventListener("input", refreshAll);
  const step = (d) => { $("seed").value = String(Math.max(0, Number($("seed").value || 0) + d)); refreshAll(); };
  $("seed-down").addEventListener("click", () => step(-1));
  $("seed-up").addEventListener("click", () => step(1));
  $("reset").addEventListener("click", () => { delete positions[walk.id]; buildSliders(); refreshImage(); });
  $("save").addEventListener("click", save);
  selectWalk(info.walks[0].id);
  document.body.dataset.ready = "1";
}

start().catch((e) => showError("cannot start: " + e));
