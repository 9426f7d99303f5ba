// The status page. Every value comes from the admin API's JSON and is shown through
// textContent, never parsed as HTML: cell values are anybody's input. The token is kept in
// sessionStorage (this tab only) and sent in the Authorization header, never in a URL.
"use strict";

const TOKEN_KEY = "sheetsync-admin-token";
const REFRESH_MS = 2000;

const $ = id => document.getElementById(id);

// A Value of the admin API ({"type": "text", "value": "abc"}) as people read it.
function shown(v) {
  if (v === null || v === undefined || v.type === "null") return "empty";
  if (v.type === "text") return JSON.stringify(v.value);
  if (v.type === "json") return JSON.stringify(v.value);
  return String(v.value);
}

const keyText = key => (key || []).map(v => (v && v.type === "text" ? v.value : shown(v))).join("/");

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function fill(tableId, rows, emptyText) {
  const body = $(tableId).tBodies[0];
  const cols = $(tableId).tHead.rows[0].cells.length;
  body.replaceChildren();
  if (rows.length === 0) {
    const tr = body.insertRow();
    const td = cell(emptyText, "empty");
    td.colSpan = cols;
    tr.append(td);
    return;
  }
  for (const cells of rows) {
    const tr = body.insertRow();
    tr.append(...cells);
  }
}

class Refused extends Error {}

async function get(path) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers["Authorization"] = "Bearer " + token;
  const res = await fetch(path, { headers, cache: "no-store", credentials: "omit" });
  let body;
  try {
    body = await res.json();
  } catch (e) {
    throw new Error(`${path} answered ${res.status} without JSON`);
  }
  if (res.status === 401) throw new Refused(body.error || "the admin API needs a token");
  if (!res.ok) throw new Error(`${path} answered ${res.status}: ${body.error || JSON.stringify(body)}`);
  return body;
}

function lagText(ms) {
  return ms === null || ms === undefined ? "no cycle yet" : (ms / 1000).toFixed(1) + " s";
}

function renderMappings(status) {
  fill("mappings", status.mappings.map(m => {
    const health = m.health || (m.up ? "up" : "down");
    const runBy = m.replica ? `${m.replica} (lease epoch ${m.epoch})` : "";
    return [
      cell(m.mapping),
      cell(health + (m.panics ? `, ${m.panics} panic(s)` : ""), health === "ok" || health === "elsewhere" ? "ok" : "bad"),
      cell(lagText(m.lag_ms)),
      cell(runBy),
      cell(String(m.held.length)),
      cell(String(m.conflicts)),
      cell(String(m.pending_deletes)),
    ];
  }), "no mappings");
  const held = status.mappings.flatMap(m => m.held.map(h => [
    cell(m.mapping),
    cell(h.key ? keyText(h.key) : "(no key)"),
    cell([h.side, h.locator].filter(Boolean).join(" ")),
    cell(h.reason),
  ]));
  fill("held", held, "no rows held");
}

function conflictWhat(c) {
  if (c.deleted_on) {
    const other = c.deleted_on === "sheet" ? "db" : "sheet";
    return `deleted in the ${c.deleted_on}, updated in the ${other}`;
  }
  return c.fields.map(f => {
    const was = f.base ? `, was ${shown(f.base)}` : "";
    return `${f.column}: sheet ${shown(f.sheet)}, db ${shown(f.db)}${was}`;
  }).join("; ");
}

function renderConflicts(list) {
  const rows = list.flatMap(m => m.conflicts.map(c => {
    const key = keyText(c.key);
    const command = document.createElement("code");
    command.textContent = `sheetsync conflicts resolve --mapping ${m.mapping} --key ${key} --side sheet|db`;
    const how = cell("");
    how.append(command);
    return [cell(m.mapping), cell(key), cell(conflictWhat(c)), cell(c.reason || "left to a person"), how];
  }));
  fill("conflicts", rows, "no conflicts");
}

function renderDeletes(list) {
  const rows = list.flatMap(m => m.pending_deletes.map(p => {
    const row = Object.entries(p.row).map(([c, v]) => v === null ? `${c}=empty` : `${c}=${JSON.stringify(v)}`);
    const decided = p.decision ? ` (decided: ${p.decision})` : "";
    return [cell(m.mapping), cell(p.key.join("/")), cell(p.deleted_on), cell(p.queued_at + decided),
            cell(row.join(", ")), cell(p.reason)];
  }));
  fill("deletes", rows, "no deletes waiting");
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function askForToken(why) {
  // What was shown belongs to a token that no longer works.
  $("content").hidden = true;
  $("login").hidden = false;
  $("updated").textContent = "The admin API needs its token.";
  showError(why);
  if (document.activeElement !== $("token")) $("token").focus();
}

let timer = null;
// Which refresh is the latest: an answer to an earlier one (sent with another token, say)
// must not overwrite what a later one showed.
let generation = 0;

async function refresh() {
  clearTimeout(timer);
  const mine = ++generation;
  try {
    const [status, conflicts, deletes] = await Promise.all(
      ["/api/status", "/api/conflicts", "/api/deletes"].map(get));
    if (mine !== generation) return;
    renderMappings(status);
    renderConflicts(conflicts);
    renderDeletes(deletes);
    $("content").hidden = false;
    $("login").hidden = true;
    showError("");
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString() + "; refreshes every 2 s.";
  } catch (e) {
    if (mine !== generation) return;
    if (e instanceof Refused) {
      askForToken("The admin API refused: " + e.message);
      return; // No retry with a token that is refused; the form asks for another.
    }
    const stale = $("content").hidden ? "" : " (below: what it said last)";
    showError("Cannot read the daemon's status: " + e.message + stale);
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

$("login").addEventListener("submit", ev => {
  ev.preventDefault();
  const token = $("token").value.trim();
  $("token").value = "";
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
  refresh();
});

refresh();
