// Zone, line and ignore-region editor: draw on a still frame of the camera, save through
// /api/config.
// Coordinates are pixels of the camera frame; the server converts to the file's convention.
"use strict";

const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
const HIT = 8; // px (in frame pixels) within which a click grabs a point
const state = { version: null, cameras: [], current: 0, mode: "select", draft: [],
                drag: null, selected: null, errors: [], image: null };

// Each kind of shape and the camera's list that holds it (as /api/config names it).
const KINDS = { zone: "zones", line: "lines", ignore: "ignore" };

function cam() { return state.cameras[state.current]; }
function shapesOf(kind) { return cam()[KINDS[kind]]; }
function isPolygon(kind) { return kind === "zone" || kind === "ignore"; }

function setMessage(text, ok) {
  const el = document.getElementById("message");
  el.textContent = text;
  el.className = ok ? "ok-msg" : "error";
}

function setMode(mode) {
  state.mode = mode;
  state.draft = [];
  for (const m of ["select", ...Object.keys(KINDS)]) {
    document.getElementById("mode-" + m).classList.toggle("active", m === mode);
  }
  document.getElementById("finish").disabled = true;
  draw();
}

function framePoint(event) {
  // clientLeft/Top skip the border; clientWidth is the displayed (maybe scaled) size.
  const rect = canvas.getBoundingClientRect();
  const x = event.clientX - rect.left - canvas.clientLeft;
  const y = event.clientY - rect.top - canvas.clientTop;
  return [Math.round(x * canvas.width / canvas.clientWidth),
          Math.round(y * canvas.height / canvas.clientHeight)];
}

function uniqueName(prefix, shapes) {
  const names = new Set(shapes.map((s) => s.name));
  let i = 1;
  while (names.has(prefix + i)) i++;
  return prefix + i;
}

function shapeErrors(kind, index) {
  const c = cam();
  return state.errors.filter((e) => e.camera === c.id && e.kind === kind && e.index === index)
    .map((e) => e.message);
}

function draw() {
  const c = cam();
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (state.image) ctx.drawImage(state.image, 0, 0);
  if (!c) return;
  ctx.lineWidth = 2;
  ctx.font = "14px sans-serif";
  // Ignore regions: dark and dashed, under the zones; people standing there are not counted.
  c.ignore.forEach((region, i) => {
    drawPolygon("ignore", i, region.points, "ignore " + (i + 1), "#bbb", "rgba(0,0,0,0.45)",
                [6, 4]);
  });
  c.zones.forEach((zone, i) => {
    drawPolygon("zone", i, zone.points, zone.name, "#3cb44b", "rgba(60,180,75,0.2)", []);
  });
  c.lines.forEach((line, i) => {
    const bad = shapeErrors("line", i).length > 0;
    ctx.strokeStyle = bad ? "#ff3b3b" : "#ff00ff";
    ctx.beginPath();
    line.points.forEach(([x, y], j) => (j ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
    drawPoints(line.points, ctx.strokeStyle);
    if (line.points.length) label(line.name + (bad ? " ⚠ " + shapeErrors("line", i)[0] : ""),
                                  line.points[0], bad);
  });
  if (state.draft.length) {
    ctx.strokeStyle = "#ffe119";
    ctx.beginPath();
    state.draft.forEach(([x, y], j) => (j ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
    drawPoints(state.draft, "#ffe119");
  }
}

function drawPolygon(kind, i, points, name, stroke, fill, dash) {
  const errors = shapeErrors(kind, i);
  const bad = errors.length > 0;
  const selected = state.selected && state.selected.kind === kind && state.selected.index === i;
  ctx.strokeStyle = bad ? "#ff3b3b" : selected ? "#8cf" : stroke;
  ctx.fillStyle = bad ? "rgba(255,59,59,0.2)" : fill;
  ctx.setLineDash(dash);
  ctx.beginPath();
  points.forEach(([x, y], j) => (j ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
  ctx.closePath();
  ctx.fill();
  ctx.stroke();
  ctx.setLineDash([]);
  drawPoints(points, ctx.strokeStyle);
  if (points.length) label(name + (bad ? " ⚠ " + errors[0] : ""), points[0], bad);
}

function drawPoints(points, color) {
  ctx.fillStyle = color;
  for (const [x, y] of points) {
    ctx.beginPath();
    ctx.arc(x, y, 4, 0, 2 * Math.PI);
    ctx.fill();
  }
}

function label(text, [x, y], bad) {
  const w = ctx.measureText(text).width + 6;
  ctx.fillStyle = bad ? "#ff3b3b" : "rgba(0,0,0,0.7)";
  ctx.fillRect(x, y - 18, w, 18);
  ctx.fillStyle = "#fff";
  ctx.fillText(text, x + 3, y - 4);
}

function hitPoint(p) {
  for (const kind of Object.keys(KINDS)) {
    const shapes = shapesOf(kind);
    for (let i = shapes.length - 1; i >= 0; i--) {
      const pts = shapes[i].points;
      for (let j = 0; j < pts.length; j++) {
        if (Math.hypot(pts[j][0] - p[0], pts[j][1] - p[1]) <= HIT) return { kind, index: i, point: j };
      }
    }
  }
  return null;
}

function finishPolygon() {
  const kind = state.mode;
  if (state.draft.length >= 3 && isPolygon(kind)) {
    const shapes = shapesOf(kind);
    shapes.push(kind === "zone" ? { key: null, name: uniqueName("zone", shapes),
                                    points: state.draft, capacity: null, area_m2: null }
                                : { key: null, points: state.draft });
    state.selected = { kind, index: shapes.length - 1 };
  }
  state.draft = [];
  setMode("select");
  renderList();
}

canvas.addEventListener("mousedown", (event) => {
  if (event.button !== 0) return;
  const p = framePoint(event);
  const c = cam();
  if (isPolygon(state.mode)) {
    const first = state.draft[0];
    if (first && state.draft.length >= 3 && Math.hypot(first[0] - p[0], first[1] - p[1]) <= HIT) {
      finishPolygon();
      return;
    }
    state.draft.push(p);
    document.getElementById("finish").disabled = state.draft.length < 3;
  } else if (state.mode === "line") {
    state.draft.push(p);
    if (state.draft.length === 2) {
      c.lines.push({ key: null, name: uniqueName("line", c.lines), points: state.draft });
      state.selected = { kind: "line", index: c.lines.length - 1 };
      setMode("select");
      renderList();
    }
  } else {
    const hit = hitPoint(p);
    if (hit) {
      state.drag = hit;
      state.selected = { kind: hit.kind, index: hit.index };
      renderList();
    }
  }
  draw();
});

canvas.addEventListener("mousemove", (event) => {
  if (!state.drag) return;
  const d = state.drag;
  shapesOf(d.kind)[d.index].points[d.point] = framePoint(event);
  draw();
});

window.addEventListener("mouseup", () => { state.drag = null; });

canvas.addEventListener("contextmenu", (event) => {
  // Right-click on a point deletes it (a polygon keeps at least 3, a line its 2 ends).
  event.preventDefault();
  const hit = hitPoint(framePoint(event));
  if (!hit) return;
  const shapes = shapesOf(hit.kind);
  if (isPolygon(hit.kind) && shapes[hit.index].points.length > 3) {
    shapes[hit.index].points.splice(hit.point, 1);
  }
  draw();
});

function field(labelText, value, onChange, attrs) {
  const labelEl = document.createElement("label");
  labelEl.textContent = labelText + " ";
  const input = document.createElement("input");
  Object.assign(input, attrs || {});
  input.value = value === null || value === undefined ? "" : String(value);
  input.addEventListener("input", () => { onChange(input.value); draw(); });
  labelEl.append(input);
  return labelEl;
}

function numberOrNull(text) {
  if (text.trim() === "") return null;
  const n = Number(text);
  return Number.isFinite(n) ? n : text; // the server reports a non-number
}

function renderList() {
  const c = cam();
  const list = document.getElementById("shapes");
  list.replaceChildren();
  if (!c) return;
  for (const kind of Object.keys(KINDS)) {
    const shapes = shapesOf(kind);
    shapes.forEach((shape, i) => {
      const box = document.createElement("div");
      box.className = "shape " + kind;
      box.dataset.kind = kind;
      box.dataset.index = String(i);
      if (state.selected && state.selected.kind === kind && state.selected.index === i) {
        box.classList.add("selected");
      }
      const title = document.createElement("strong");
      title.textContent = (kind === "ignore" ? "ignore " + (i + 1) : kind) + " ";
      box.append(title);
      if (kind !== "ignore") {
        box.append(field("name", shape.name, (v) => { shape.name = v; }, { className: "name" }));
      }
      if (kind === "zone") {
        box.append(field("capacity", shape.capacity, (v) => { shape.capacity = numberOrNull(v); },
                         { className: "capacity", type: "number", min: 1 }));
        box.append(field("area m²", shape.area_m2, (v) => { shape.area_m2 = numberOrNull(v); },
                         { className: "area", type: "number", min: 0, step: "any" }));
      }
      const del = document.createElement("button");
      del.textContent = "Delete";
      del.className = "delete";
      del.addEventListener("click", () => {
        shapes.splice(i, 1);
        state.selected = null;
        state.errors = [];
        renderList();
        draw();
      });
      box.append(del);
      const err = document.createElement("div");
      err.className = "error";
      err.textContent = shapeErrors(kind, i).join("; ");
      box.append(err);
      list.append(box);
    });
  }
}

function loadImage(c) {
  state.image = null;
  if (c.width) { canvas.width = c.width; canvas.height = c.height; }
  const img = new Image();
  img.onload = () => {
    state.image = img;
    canvas.width = img.naturalWidth;
    canvas.height = img.naturalHeight;
    canvas.dataset.ready = "1";
    draw();
  };
  img.onerror = () => setMessage("no frame from this camera yet", false);
  img.src = "/cameras/" + encodeURIComponent(c.id) + "/frame.jpg?t=" + Date.now();
}

function selectCamera(index) {
  state.current = index;
  state.selected = null;
  setMode("select");
  canvas.dataset.ready = "";
  loadImage(cam());
  renderList();
}

async function load() {
  const response = await fetch("/api/config", { cache: "no-store" });
  const data = await response.json();
  if (!response.ok) { setMessage(data.errors.map((e) => e.message).join("; "), false); return; }
  state.version = data.version;
  state.cameras = data.cameras;
  const select = document.getElementById("camera");
  select.replaceChildren(...data.cameras.map((c, i) => new Option(c.id, String(i))));
  select.onchange = () => selectCamera(Number(select.value));
  selectCamera(Math.min(state.current, data.cameras.length - 1));
}

async function save() {
  const payload = { version: state.version, cameras: state.cameras.map((c) => ({
    id: c.id, zones: c.zones, lines: c.lines, ignore: c.ignore })) };
  setMessage("saving…", true);
  const response = await fetch("/api/config", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(payload) });
  const data = await response.json();
  state.errors = response.ok ? [] : data.errors || [];
  const general = state.errors.filter((e) => e.index === undefined || e.index === null);
  document.getElementById("general-errors").textContent = general.map((e) => e.message).join("; ");
  if (response.ok) {
    setMessage("saved " + data.path, true);
    const keep = state.current;
    await load(); // fresh keys and version for the next save
    state.current = keep;
  } else {
    setMessage("not saved: " + state.errors.length + " problem(s)", false);
    renderList();
    draw();
  }
}

document.getElementById("mode-select").addEventListener("click", () => setMode("select"));
document.getElementById("mode-zone").addEventListener("click", () => setMode("zone"));
document.getElementById("mode-line").addEventListener("click", () => setMode("line"));
document.getElementById("mode-ignore").addEventListener("click", () => setMode("ignore"));
document.getElementById("finish").addEventListener("click", finishPolygon);
document.getElementById("save").addEventListener("click", save);
window.addEventListener("keydown", (event) => {
  if (event.key === "Escape") setMode("select");
  if (event.key === "Enter" && isPolygon(state.mode)) finishPolygon();
});
load();
