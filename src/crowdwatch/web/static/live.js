// Live console: one card per camera (state, preview, zones with occupancy and a 10-minute
// trend, lines), sites and alerts. Updates by server-sent events (/api/events), falling back
// to polling /api/console; a lost connection is shown and recovers by itself.
// No framework, no external assets: the page works offline.
"use strict";

const cards = new Map();
const trends = new Map();      // "camera/zone" -> [[t, people], ...], the last 10 minutes
const alertsSeen = new Set();  // "camera/zone/level" already announced (sound)
let lastNow = null;            // the server's clock of the newest state (trend `since`)
let lastMessage = 0;           // Date.now() of the newest state
let source = null;             // the EventSource, while it is open or reconnecting
let pollTimer = null;
let retryTimer = null;
const WATCHDOG_MS = 6000;      // three missed heartbeats (web/events.py: HEARTBEAT_S)
const MJPEG_UP_TO = 4;         // more cameras: snapshots every 2 s (MJPEG holds a server worker)

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function pad(n) { return String(n).padStart(2, "0"); }
function clockText(t) {
  const d = new Date(t * 1000);
  return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}
function fmt(x, digits) { return x === null || x === undefined ? "–" : x.toFixed(digits); }

// --- connection ----------------------------------------------------------------------------

function setConn(state, text) {
  const conn = document.getElementById("conn");
  conn.dataset.state = state;
  conn.textContent = text;
  document.body.classList.toggle("disconnected", state === "lost");
}

function received(status) {
  lastMessage = Date.now();
  render(status);
}

function connect() {
  clearTimeout(retryTimer);
  if (!window.EventSource) { startPolling(); return; }
  source = new EventSource("/api/events");
  source.addEventListener("state", (event) => {
    stopPolling();
    setConn("live", "live updates");
    received(JSON.parse(event.data));
  });
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED) {  // refused (503, 401): poll, retry later
      source = null;
      startPolling();
      retryTimer = setTimeout(connect, 10000);
    } else {
      setConn("lost", "connection lost — reconnecting…");
    }
  };
}

function startPolling() {
  if (pollTimer === null) { poll(); pollTimer = setInterval(poll, 1000); }
}
function stopPolling() {
  if (pollTimer !== null) { clearInterval(pollTimer); pollTimer = null; }
}

async function poll() {
  try {
    const since = lastNow === null ? "" : "?since=" + lastNow;
    const response = await fetch("/api/console" + since, { cache: "no-store" });
    if (!response.ok) throw new Error("status " + response.status);
    received(await response.json());
    setConn("polling", "updates by polling");
  } catch (error) {
    setConn("lost", "connection lost — retrying… (" + error.message + ")");
  }
}

// A silently dead connection (no heartbeat): drop it and start again.
setInterval(() => {
  document.getElementById("clock").textContent = clockText(Date.now() / 1000);
  if (lastMessage && Date.now() - lastMessage > WATCHDOG_MS && pollTimer === null) {
    setConn("lost", "connection lost — reconnecting…");
    if (source) source.close();
    source = null;
    startPolling();
    retryTimer = setTimeout(connect, 2000);
  }
}, 1000);

// --- cards ---------------------------------------------------------------------------------

function previewMode(count) {
  if (document.body.classList.contains("compact")) return "none";
  return count <= MJPEG_UP_TO ? "mjpeg" : "snapshot";
}

function setPreview(card, id, mode) {
  const media = card.querySelector(".media");
  let img = media.querySelector("img.preview");
  if (mode === "none" || !window.previewAllowed) {
    if (img) { img.src = ""; img.remove(); }  // closing the image ends its MJPEG stream
    return;
  }
  const base = "/cameras/" + encodeURIComponent(id);  // ids are plain, never source URLs
  if (!img) {
    img = el("img", "preview");
    img.alt = "live preview of " + id;
    media.prepend(img);
  }
  if (mode === "mjpeg" && img.dataset.mode !== "mjpeg") img.src = base + "/preview.mjpg";
  const now = Date.now();
  if (mode === "snapshot" && (img.dataset.mode !== "snapshot" || now - Number(img.dataset.at) > 2000)) {
    img.src = base + "/snapshot.jpg?t=" + now;
    img.dataset.at = String(now);
  }
  img.dataset.mode = mode;
}

function card(camera) {
  let node = cards.get(camera.id);
  if (node) return node;
  node = el("section", "camera");
  node.id = "camera-" + camera.id;
  const head = el("header", "camera-head");
  const heatmap = el("a", "heatmap-link", "heatmap");
  // The id goes through encodeURIComponent: camera ids are plain, never source URLs.
  heatmap.href = "/cameras/" + encodeURIComponent(camera.id) + "/heatmap.png";
  heatmap.target = "_blank";
  heatmap.hidden = true;
  head.append(el("h2", "", camera.id), el("span", "state"), heatmap);
  const body = el("div", "camera-body");
  const media = el("div", "media");
  media.append(el("p", "preview-note"));
  const stats = el("div", "stats");
  stats.append(el("div", "count"), el("div", "rates"), el("ul", "zones"), el("ul", "lines"));
  body.append(media, stats);
  node.append(head, body);
  document.getElementById("cameras").append(node);
  cards.set(camera.id, node);
  return node;
}

function stateText(camera) {
  const age = camera.age_s === null ? "" : " — last frame " + camera.age_s.toFixed(1) + " s ago";
  if (camera.state === "live") return "live";
  if (camera.state === "down") {
    return "down" + (camera.cause ? " (" + camera.cause + ")" : "") + ": " + camera.reason + age;
  }
  if (camera.state === "ended") return "ended: file finished" + age;
  if (camera.state === "waiting") return "waiting: " + camera.reason;
  return camera.state + (camera.reason ? ": " + camera.reason : "");
}

function noteText(camera) {
  if (camera.state === "live") return "";
  if (camera.state === "stale") return "preview frozen: " + camera.reason;
  if (camera.state === "ended") return "preview frozen: the file finished";
  if (camera.state === "down") return "no preview: camera down (" + camera.reason + ")";
  return "no preview yet: waiting for the first frame";
}

function ratesText(rates) {
  const parts = [];
  if (rates.stream_fps) parts.push("stream " + fmt(rates.stream_fps, 0));
  if (rates.received_fps !== null) parts.push("received " + fmt(rates.received_fps, 1));
  parts.push("analysed " + fmt(rates.analysed_fps, 1));
  return parts.join(" · ") + " frames/s";
}

function renderCamera(camera, mode) {
  const node = card(camera);
  node.dataset.state = camera.state;
  node.classList.toggle("not-live", camera.state !== "live");
  node.querySelector(".state").textContent = stateText(camera);
  node.querySelector(".heatmap-link").hidden = !window.heatmapShown;
  node.querySelector(".preview-note").textContent = noteText(camera);
  setPreview(node, camera.id, camera.age_s === null ? "none" : mode);  // no frame, no image
  const count = node.querySelector(".count");
  count.textContent = camera.people === null
    ? (camera.state === "down" ? "no count: camera down" : "waiting for frames")
    : camera.people + (camera.people === 1 ? " person" : " people");
  count.dataset.people = camera.people === null ? "" : String(camera.people);
  const rates = node.querySelector(".rates");
  // Rates only while frames are expected: an ended file or a down camera says so above.
  rates.textContent = camera.state === "ended" || camera.state === "down" ? ""
    : ratesText(camera.rates) + (camera.rates.behind ? " — falling behind: " + camera.rates.why : "");
  rates.classList.toggle("behind", camera.rates.behind);
  rates.dataset.behind = camera.rates.behind ? "1" : "0";
  renderZones(node.querySelector(".zones"), camera);
  renderLines(node.querySelector(".lines"), camera.lines);
}

// --- zones: count vs capacity, occupancy bar, density, method, sparkline ----------------------

function zoneItem(list, name) {
  let li = list.querySelector(`li[data-zone="${CSS.escape(name)}"]`);
  if (li) return li;
  li = el("li", "zone");
  li.dataset.zone = name;
  const head = el("div", "zone-head");
  head.append(el("span", "zone-name", name), el("span", "zone-people"), el("span", "zone-level"));
  const bar = el("div", "bar");
  bar.append(el("div", "fill"));
  const spark = el("canvas", "spark");
  spark.width = 240;
  spark.height = 36;
  li.append(head, bar, el("div", "zone-meta"), spark);
  list.append(li);
  return li;
}

function renderZones(list, camera) {
  for (const zone of camera.zones) {
    const li = zoneItem(list, zone.name);
    const level = zone.level || "";
    li.className = "zone" + (level ? " level-" + level : "");
    li.dataset.level = level;
    const people = zone.people === null ? "–" : String(zone.people);
    li.querySelector(".zone-people").textContent = zone.capacity ? people + " / " + zone.capacity : people;
    li.querySelector(".zone-level").textContent = level;
    const ratio = zone.capacity && zone.people !== null ? zone.people / zone.capacity : null;
    const bar = li.querySelector(".bar");
    bar.hidden = ratio === null;
    const fill = li.querySelector(".fill");
    fill.style.width = ratio === null ? "0%" : Math.min(100, 100 * ratio).toFixed(1) + "%";
    fill.dataset.ratio = ratio === null ? "" : ratio.toFixed(4);
    const meta = [];
    if (ratio !== null) meta.push(Math.round(100 * ratio) + " % full");
    if (zone.density !== null) meta.push(zone.density.toFixed(2) + " people/m²");
    if (camera.method) meta.push("counted by " + camera.method);
    li.querySelector(".zone-meta").textContent = meta.join(" · ");
    const key = camera.id + "/" + zone.name;
    const points = mergeTrend(key, zone.trend.map((p) => [lastNow + p[0], p[1]]));
    drawSpark(li.querySelector(".spark"), points, zone.capacity);
  }
}

function mergeTrend(key, incoming) {
  let points = trends.get(key) || [];
  if (incoming.length) {
    // The server resends the newest seconds (a point may still have been folding): replace.
    const cut = Math.floor(incoming[0][0] / window.trendStep) * window.trendStep;
    points = points.filter((p) => p[0] < cut).concat(incoming);
  }
  const oldest = lastNow - window.trendWindow;
  points = points.filter((p) => p[0] >= oldest);
  trends.set(key, points);
  return points;
}

function drawSpark(canvas, points, capacity) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  canvas.dataset.points = String(points.length);
  const top = Math.max(1, capacity || 0, ...points.map((p) => p[1]));
  const x = (t) => w * (1 - (lastNow - t) / window.trendWindow);
  const y = (v) => h - 2 - (h - 4) * v / top;
  if (capacity) {  // the capacity as a dashed line
    ctx.strokeStyle = "#777";
    ctx.setLineDash([3, 3]);
    ctx.beginPath(); ctx.moveTo(0, y(capacity)); ctx.lineTo(w, y(capacity)); ctx.stroke();
    ctx.setLineDash([]);
  }
  if (!points.length) return;
  ctx.strokeStyle = "#8cf";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  points.forEach((p, i) => (i ? ctx.lineTo(x(p[0]), y(p[1])) : ctx.moveTo(x(p[0]), y(p[1]))));
  ctx.stroke();
}

function renderLines(list, lines) {
  list.replaceChildren(...lines.map((line) => {
    const li = el("li", "line");
    li.dataset.line = line.name;
    li.dataset.in = line.in === null ? "" : String(line.in);
    li.dataset.out = line.out === null ? "" : String(line.out);
    const totals = line.in === null ? "no crossings yet" : "in " + line.in + " · out " + line.out;
    const rate = line.in_per_min === null ? "" : " — last minute: " + fmt(line.in_per_min, 1) +
      " in/min · " + fmt(line.out_per_min, 1) + " out/min";
    li.append(el("strong", "", line.name + ": "), el("span", "totals", totals), el("span", "rate", rate));
    return li;
  }));
}

// --- sites and alerts ----------------------------------------------------------------------

function renderSites(sites) {
  const box = document.getElementById("sites");
  box.hidden = sites.length === 0;
  box.replaceChildren(...sites.map((site) => {
    const div = el("div", "site" + (site.level ? " level-" + site.level : ""));
    div.dataset.site = site.name;
    div.dataset.level = site.level || "";
    const now = site.occupancy === null ? "–" : String(site.occupancy);
    const text = site.capacity ? now + " / " + site.capacity : now;
    div.append(el("strong", "", site.name), el("span", "site-occupancy", text),
      el("span", "site-level", site.level || ""),
      el("span", "site-people", site.people === null ? "" : site.people + " in its zones"));
    return div;
  }));
}

function beep(level) {
  try {
    const audio = new AudioContext();
    const tone = audio.createOscillator();
    tone.frequency.value = level === "critical" ? 880 : 660;
    tone.connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.25);
  } catch (error) { /* no audio device: the banner is enough */ }
}

function renderAlerts(alerts) {
  const box = document.getElementById("alerts");
  box.replaceChildren(...alerts.map((alert) => {
    const div = el("div", "alert level-" + alert.level);
    div.dataset.level = alert.level;
    div.dataset.zone = alert.camera + "/" + alert.zone;
    div.textContent = alert.level.toUpperCase() + ": " + alert.camera + " / " + alert.zone +
      " since " + clockText(alert.since);
    return div;
  }));
  const current = new Set(alerts.map((a) => a.camera + "/" + a.zone + "/" + a.level));
  for (const key of current) {
    if (!alertsSeen.has(key) && document.getElementById("sound").checked) {
      beep(key.endsWith("critical") ? "critical" : "warning");
    }
  }
  alertsSeen.clear();
  current.forEach((key) => alertsSeen.add(key));
}

function render(status) {
  window.previewAllowed = status.preview;
  window.trendWindow = status.window_s;
  window.trendStep = status.step_s;
  lastNow = status.now;
  document.getElementById("editor-link").hidden = !status.editor;
  window.heatmapShown = Boolean(status.heatmap);
  document.getElementById("status-error").textContent = "";
  const mode = previewMode(status.cameras.length);
  for (const camera of status.cameras) renderCamera(camera, mode);
  renderSites(status.sites);
  renderAlerts(status.alerts);
}

// --- settings (kept in this browser) -------------------------------------------------------

for (const id of ["compact", "sound"]) {
  const box = document.getElementById(id);
  box.checked = localStorage.getItem("crowdwatch." + id) === "1";
  box.addEventListener("change", () => {
    localStorage.setItem("crowdwatch." + id, box.checked ? "1" : "0");
    document.body.classList.toggle("compact", document.getElementById("compact").checked);
  });
}
document.body.classList.toggle("compact", document.getElementById("compact").checked);

connect();
