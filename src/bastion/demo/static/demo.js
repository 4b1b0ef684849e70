// The demo app's only script: token times in the reader's time zone and a countdown to
// expiry. The page works without it; its times are then shown in UTC.
"use strict";

for (const element of document.querySelectorAll("time[data-local]")) {
  element.textContent = new Date(element.dateTime).toLocaleString();
}

const countdowns = document.querySelectorAll("[data-countdown]");

function tick() {
  const now = Date.now() / 1000;
  for (const element of countdowns) {
    const left = Math.round(Number(element.dataset.countdown) - now);
    const span = Math.abs(left);
    const text = `${Math.floor(span / 60)}:${String(span % 60).padStart(2, "0")}`;
    element.textContent = left > 0 ? `(in ${text})` : `(expired ${text} ago)`;
  }
}

if (countdowns.length > 0) {
  tick();
  setInterval(tick, 1000);
}
