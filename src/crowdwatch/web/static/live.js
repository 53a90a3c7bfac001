// Live page: one card per camera with its MJPEG preview; counts polled from /api/status.
"use strict";

const cards = new Map();

function card(camera, preview) {
  let el = cards.get(camera.id);
  if (el) return el;
  el = document.createElement("section");
  el.className = "camera";
  el.id = "camera-" + camera.id;
  const title = document.createElement("h2");
  title.textContent = camera.id;
  el.append(title);
  if (preview) {
    const img = document.createElement("img");
    img.alt = "live preview of " + camera.id;
    img.className = "preview";
    // The id goes through encodeURIComponent: camera ids are plain, never source URLs.
    img.src = "/cameras/" + encodeURIComponent(camera.id) + "/preview.mjpg";
    el.append(img);
  }
  const note = document.createElement("p");
  note.className = "preview-note";
  el.append(note);
  const state = document.createElement("div");
  state.className = "state";
  el.append(state);
  const count = document.createElement("div");
  count.className = "count";
  el.append(count);
  const zones = document.createElement("ul");
  zones.className = "zones";
  el.append(zones);
  document.getElementById("cameras").append(el);
  cards.set(camera.id, el);
  return el;
}

function render(status) {
  document.getElementById("editor-link").hidden = !status.editor;
  for (const camera of status.cameras) {
    const el = card(camera, status.preview);
    // Never an old number as if it were now: live, stale (greyed, with its age) or down.
    el.dataset.state = camera.state;
    el.classList.toggle("not-live", camera.state !== "live");
    const state = el.querySelector(".state");
    const age = camera.age_s === null ? "" : " — last frame " + camera.age_s.toFixed(1) + " s ago";
    state.textContent = camera.state === "live" ? "live"
      : camera.state + (camera.reason ? ": " + camera.reason : "") + (camera.state === "waiting" ? "" : age);
    el.querySelector(".preview-note").textContent = camera.state === "live" ? ""
      : camera.state === "stale" ? "preview frozen: " + camera.reason
      : camera.state === "down" ? "no preview: camera down (" + camera.reason + ")"
      : "no preview yet: waiting for the first frame";
    const count = el.querySelector(".count");
    count.textContent = camera.people === null ? (camera.state === "down" ? "no count: camera down" : "waiting for frames") : camera.people + (camera.people === 1 ? " person" : " people");
    count.dataset.people = camera.people === null ? "" : String(camera.people);
    const list = el.querySelector(".zones");
    list.replaceChildren(...camera.zones.map((zone) => {
      const li = document.createElement("li");
      li.className = "zone" + (zone.level ? " level-" + zone.level : "");
      li.dataset.zone = zone.name;
      li.dataset.level = zone.level || "";
      li.textContent = zone.name + ": " + zone.people + (zone.level ? " (" + zone.level + ")" : "");
      return li;
    }));
  }
}

async function poll() {
  try {
    const response = await fetch("/api/status", { cache: "no-store" });
    if (!response.ok) throw new Error("status " + response.status);
    render(await response.json());
    document.getElementById("status-error").textContent = "";
  } catch (error) {
    document.getElementById("status-error").textContent = "cannot reach crowdwatch: " + error.message;
  }
}

poll();
setInterval(poll, 1000);
