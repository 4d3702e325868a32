// Warren's few browser behaviours. They live in this file, not in the pages,
// so the Content-Security-Policy can forbid inline script and handlers.
"use strict";

// Forms marked data-confirm ask before they submit (deleting an instance, a profile).
document.addEventListener("submit", (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// An instance page (its event list carries data-progress) follows the
// worker's progress without a manual reload.
function followProgress(list) {
  const done = ["ready", "failed", "delete-failed", "denied", "awaiting-approval"];
  async function poll() {
    const response = await fetch(list.dataset.progress, {headers: {"Accept": "application/json"}});
    if (response.status === 404) { window.location = list.dataset.gone; return; }
    const data = await response.json();
    const status = document.getElementById("status");
    status.textContent = data.status; status.className = "status-" + data.status;
    document.getElementById("ipv4").textContent = data.ipv4 || "—";
    const ipv6 = document.getElementById("ipv6");
    if (ipv6) ipv6.textContent = data.ipv6 || "—";
    const error = document.getElementById("error");
    error.hidden = !data.error; error.textContent = data.error || "";
    list.replaceChildren(...data.events.map(e => {
      const item = document.createElement("li");
      const time = document.createElement("time"); time.textContent = e.at.slice(11, 19);
      const step = document.createElement("strong"); step.textContent = e.step;
      item.append(time, " ", step, " " + e.message);
      return item;
    }));
    if (!done.includes(data.status)) setTimeout(poll, 700);
  }
  if (!done.includes(list.dataset.status)) setTimeout(poll, 300);
}

const progressList = document.querySelector("[data-progress]");
if (progressList) followProgress(progressList);
