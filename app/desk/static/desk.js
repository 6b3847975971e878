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
  const imported = document.getElementById("import-claims");
  const links = document.getElementById("import-links");
  const moreNote = document.getElementById("import-more");
  const BATCH = 100;
  const SHOWN = 20;  // links to imported claims listed at most
  let more = 0;

  function readable(line) {
    try { return JSON.parse(line); } catch (_) { return null; }
  }

  // What a record says, for its link: a claim's text, a ClaimReview's claimReviewed.
  function label(record, claimId) {
    const said = record && typeof record === "object" && (record.text || record.claimReviewed);
    return typeof said === "string" ? said : "Claim " + claimId;
  }

  function chunks(list, encode, type) {
    const out = [];
    for (let start = 0; start < list.length; start += BATCH) {
      const part = list.slice(start, start + BATCH);
      out.push({body: encode(part), type: type, count: part.length, records: part});
    }
    return out;
  }

  // The file as batches the server takes as POST /v1/ingest does: NDJSON by lines; a JSON
  // array (of claims or ClaimReviews) or a claims:search response by its records; anything
  // else (one ClaimReview, a @graph whose nodes refer to each other) whole, on one line.
  function batches(text) {
    let data;
    try { data = JSON.parse(text); } catch (_) { data = undefined; }
    if (data === undefined) {
      const lines = text.split(/\r?\n/).filter((line) => line.trim());
      return chunks(lines, (part) => part.join("\n"), "application/x-ndjson").map(
        (b) => ({...b, records: b.records.map(readable)}));
    }
    if (Array.isArray(data)) return chunks(data, JSON.stringify, "application/json");
    if (data && Array.isArray(data.items) && Object.keys(data).length === 1) {
      return chunks(data.items, (part) => JSON.stringify({items: part}), "application/json");
    }
    if (data && Array.isArray(data.claims) && !data["@context"]) {
      return chunks(data.claims, (part) => JSON.stringify({...data, claims: part}),
        "application/json");
    }
    return [{body: JSON.stringify(data), type: "application/x-ndjson", count: 1,
      records: [data]}];
  }

  function problem(text) {
    const li = document.createElement("li");
    li.textContent = text;
    errors.append(li);
  }

  function link(item, record) {
    if (!item.claim_id) return;
    imported.hidden = false;
    if (links.children.length >= SHOWN) {
      more += 1;
      moreNote.textContent = "… and " + more + " more: find them in the claims list.";
      return;
    }
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = "/claims/" + encodeURIComponent(item.claim_id);
    a.textContent = label(record, item.claim_id);
    li.append(a, " (" + item.status + ")");
    links.append(li);
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = document.getElementById("import-file").files[0];
    if (!file) { summary.textContent = "Choose a file first."; return; }
    const parts = batches(await file.text());
    const total = parts.reduce((n, b) => n + b.count, 0);
    const totals = {created: 0, duplicate: 0, updated: 0, unchanged: 0, error: 0, replayed: 0};
    errors.replaceChildren();
    links.replaceChildren();
    moreNote.textContent = "";
    more = 0;
    imported.hidden = true;
    progress.max = Math.max(total, 1);
    progress.value = 0;
    const button = form.querySelector("button");
    button.disabled = true;
    let sent = 0;
    try {
      for (const [index, part] of parts.entries()) {
        const first = sent + 1;
        const response = await fetch("/import/batch", {
          method: "POST", credentials: "same-origin",
          headers: {"Content-Type": part.type, "X-CSRF-Token": form.dataset.csrf,
            "X-Import-Key": form.dataset.importKey, "X-Import-Batch": String(index)},
          body: part.body,
        });
        const result = await response.json().catch(() => ({}));
        sent += part.count;
        if (!response.ok) {
          problem("Records " + first + "–" + sent + ": " + (result.detail || response.statusText));
          totals.error += part.count;
        } else if (result.replayed) {
          // Sent from this page before: its first answer, not counted again.
          totals.replayed += result.items.length;
          for (const item of result.items) link(item, part.records[item.index]);
        } else {
          for (const item of result.items) {
            totals[item.status] = (totals[item.status] || 0) + 1;
            link(item, part.records[item.index]);
            if (item.error) problem("Record " + (first + item.index) + ": " + item.error.detail);
          }
        }
        progress.value = Math.min(sent, total);
        progress.textContent = Math.round(100 * progress.value / progress.max) + "%";
        summary.textContent = "Sent " + progress.value + " of " + total + " records: " +
          totals.created + " created, " + totals.duplicate + " duplicates, " +
          totals.updated + " updated, " + totals.unchanged + " unchanged, " +
          totals.error + " failed" + (totals.replayed ? ", " + totals.replayed +
          " replayed (sent from this page before: not imported again)" : "") + ".";
      }
      summary.textContent = "Done. " + summary.textContent;
    } finally {
      button.disabled = false;
    }
  });
})();
