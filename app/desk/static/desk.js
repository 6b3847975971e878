// The desk's only script: live updates from the change feed, and the import's progress.
// Pages work without it; no inline script anywhere (the Content-Security-Policy forbids it).
"use strict";

(function live() {
  const body = document.body;
  const mode = body.dataset.live;
  if (!mode || !window.EventSource) return;
  const status = document.getElementById("live-status");
  const params = new URLSearchParams();
  if (body.dataset.cursor) params.set("cursor", body.dataset.cursor);
  if (mode === "claim") params.set("claim_id", body.dataset.claim);
  // The feed is /v1/events/stream served under the desk's cookie; EventSource reconnects
  // by itself after a dropped connection and sends Last-Event-ID to resume.
  const source = new EventSource("/desk/events?" + params.toString());
  let timer = null;
  let latest = null;

  async function refresh() {
    timer = null;
    const response = await fetch(window.location.href, {credentials: "same-origin"});
    if (!response.ok) return;
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const region of document.querySelectorAll("[data-live-region]")) {
      const replacement = fresh.getElementById(region.id);
      if (!replacement || region.contains(document.activeElement)) continue;
      region.replaceWith(document.importNode(replacement, true));
    }
    if (latest) {
      const when = new Date(latest.at).toLocaleTimeString();
      status.textContent = "Updated live: " + latest.action + " by " + latest.actor + " at " + when + ".";
    }
  }

  source.onmessage = null;
  const onEvent = (message) => {
    try { latest = JSON.parse(message.data); } catch (_) { latest = null; }
    if (!timer) timer = window.setTimeout(refresh, 250);
  };
  // Every event type the ledger records arrives as a named SSE event (its action).
  for (const action of ["claim.created", "claim.updated", "claim.deleted", "claim.merged",
    "claim.merged_into", "claim.assigned", "review.created", "attribution.created", "attribution.deleted",
    "link.created", "link.deleted", "source.created", "source.updated", "source.merged",
    "claim.published", "claim.withdrawn"]) {
    source.addEventListener(action, onEvent);
  }
  source.addEventListener("message", onEvent);
  window.addEventListener("pagehide", () => source.close());
})();

(function importer() {
  const form = document.getElementById("import-form");
  if (!form) return;
  const progress = document.getElementById("import-progress");
  const summary = document.getElementById("import-summary");
  const errors = document.getElementById("import-errors");
  const BATCH = 100;

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = document.getElementById("import-file").files[0];
    if (!file) { summary.textContent = "Choose a file first."; return; }
    const lines = (await file.text()).split(/\r?\n/).filter((line) => line.trim());
    const totals = {created: 0, duplicate: 0, updated: 0, error: 0};
    errors.replaceChildren();
    progress.max = Math.max(lines.length, 1);
    progress.value = 0;
    form.querySelector("button").disabled = true;
    try {
      for (let start = 0; start < lines.length; start += BATCH) {
        const batch = lines.slice(start, start + BATCH);
        const response = await fetch("/import/batch", {
          method: "POST", credentials: "same-origin",
          headers: {"Content-Type": "application/x-ndjson", "X-CSRF-Token": form.dataset.csrf},
          body: batch.join("\n"),
        });
        const result = await response.json().catch(() => ({}));
        if (!response.ok) {
          const li = document.createElement("li");
          li.textContent = "Lines " + (start + 1) + "–" + (start + batch.length) + ": " + (result.detail || response.statusText);
          errors.append(li);
          totals.error += batch.length;
        } else {
          for (const item of result.items) {
            totals[item.status] = (totals[item.status] || 0) + 1;
            if (item.error) {
              const li = document.createElement("li");
              li.textContent = "Line " + (start + item.index + 1) + ": " + item.error.detail;
              errors.append(li);
            }
          }
        }
        progress.value = Math.min(start + batch.length, lines.length);
        progress.textContent = Math.round(100 * progress.value / progress.max) + "%";
        summary.textContent = "Sent " + progress.value + " of " + lines.length + " lines: " +
          totals.created + " created, " + totals.duplicate + " duplicates, " +
          totals.updated + " updated, " + totals.error + " failed.";
      }
      summary.textContent = "Done. " + summary.textContent;
    } finally {
      form.querySelector("button").disabled = false;
    }
  });
})();
