// The console: talks to the API with the signed-in key. Everything shown is set through textContent (never
// innerHTML), and control and bidi characters are shown escaped, so data can neither run nor hide itself.
"use strict";

const KEY = "hybrid-llm-key";
const $ = (id) => document.getElementById(id);
const state = { config: null, seen: {}, stream: null, timer: null, roles: null };

// --- escaping -------------------------------------------------------------------------------------------------
const HIDDEN = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g;
function visible(value) {
  const s = value === null || value === undefined ? "" : String(value);
  return s.replace(HIDDEN, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "text") node.textContent = visible(v);
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c) node.append(c);
  return node;
}
function setText(id, text) { $(id).textContent = visible(text); }

// --- API ------------------------------------------------------------------------------------------------------
async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + sessionStorage.getItem(KEY) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { message: text }; }
  if (resp.status === 401) { signOut("Your key was refused (401). Sign in again."); throw new Error("401"); }
  if (!resp.ok) {
    const message = (data && (data.message || (data.error && data.error.message))) || resp.statusText;
    throw new Error(resp.status + ": " + message);
  }
  return data;
}

// --- sign in --------------------------------------------------------------------------------------------------
async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  try {
    state.config = await api("GET", "/v1/console/config");
  } catch (e) {
    if (e.message !== "401") signOut("Cannot sign in: " + e.message);
    return;
  }
  $("signin").hidden = true;
  $("app").hidden = false;
  $("signout").hidden = false;
  setText("whoami", "Signed in");
  try {
    const me = await api("GET", "/v1/console/whoami");
    state.roles = me.roles;
    setText("whoami", "Signed in as " + me.name + " (" + me.roles.join(", ") + ")");
  } catch { state.roles = null; /* an API without whoami: show everything, the API still decides */ }
  // Show what the key's roles allow (the API enforces it either way).
  const has = (...roles) => state.roles === null || roles.some((r) => state.roles.includes(r));
  $("approvals").hidden = !has("approver", "auditor", "operator");
  $("sandboxes").hidden = !has("user", "approver", "auditor", "operator");
  $("engage-form").hidden = $("release-form").hidden = !has("operator");
  const ui = state.config.temporal_ui_url;
  if (ui) $("temporal-ui").href = ui + "/namespaces/" + encodeURIComponent(state.config.namespace) + "/workflows";
  else $("temporal-ui").hidden = true;
  refresh();
  state.timer = setInterval(refresh, 2000);
}

function signOut(message) {
  sessionStorage.removeItem(KEY);
  clearInterval(state.timer);
  if (state.stream) state.stream.abort();
  state.seen = {};
  $("app").hidden = true;
  $("signout").hidden = true;
  $("signin").hidden = false;
  setText("whoami", "");
  setText("signin-error", message || "");
  $("api-key").value = "";
  $("api-key").focus();
}

// --- refresh loop: re-render a part only when its data changed (keeps keyboard focus where it is) -------------
async function refresh() {
  await Promise.all([
    part("lockdown", "/v1/lockdown", renderLockdown, "lockdown-error"),
    $("approvals").hidden ? null : part("approvals", "/v1/approvals", renderApprovals, "approvals-error"),
    part("sandboxes", "/v1/sandboxes", renderSandboxes, "sandboxes-error"),
    part("requests", "/v1/console/requests", renderRequests, "requests-error"),
  ]);
}
async function part(name, path, render, errorId) {
  try {
    const data = await api("GET", path);
    const key = JSON.stringify(data);
    if (state.seen[name] !== key) { state.seen[name] = key; await render(data); }
    setText(errorId, "");
  } catch (e) { if (e.message !== "401") setText(errorId, e.message); }
}

function renderLockdown(s) {
  const status = $("lockdown-status");
  status.className = s.locked ? "locked" : "";
  status.textContent = visible(s.locked
    ? "LOCKED (epoch " + s.epoch + "): " + (s.reason || "") + " — " + (s.trigger || "") + " by " + (s.actor || "?")
    : "Not locked (epoch " + s.epoch + ")");
}

function decisionControls(section, id, labels, onDecide) {
  // The outcome goes to the section's own status line: the card itself leaves the list once decided.
  const noteId = section + "-note-" + id;
  const note = el("input", { id: noteId, maxlength: 2000 });
  const decide = async (approve) => {
    const verb = approve ? labels[0] : labels[1];
    try {
      const out = await onDecide(approve, note.value);
      setText(section + "-status", verb + " " + id + ": " + (out.result || "done"));
    } catch (e) { setText(section + "-status", verb + " " + id + " failed: " + e.message); }
    delete state.seen[section];
    refresh();
  };
  return [el("label", { for: noteId, text: "Note" }), note,
          el("div", {}, el("button", { type: "button", on: { click: () => decide(true) }, text: labels[0] }),
                        el("button", { type: "button", on: { click: () => decide(false) }, text: labels[1] }))];
}

function renderApprovals(items) {
  const list = $("approvals-list");
  list.replaceChildren();
  $("approvals-empty").hidden = items.length > 0;
  for (const item of items) {
    const r = item.request;
    const what = [r.actor, r.operation, r.path || r.host || r.target || ""].join(" ");
    list.append(el("li", { "data-workflow-id": item.workflow_id },
      el("h3", { text: what }),
      el("p", { text: "Model: " + (r.model_id || "—") + ". Why: " + (r.explanation || "—") }),
      el("p", { text: "Policy: " + item.decision.decision + " — " + item.decision.reason }),
      el("p", { class: "hint", text: item.workflow_id }),
      ...decisionControls("approvals", item.workflow_id, ["Approve", "Deny"],
        (approve, note) => api("POST", "/v1/approvals/" + encodeURIComponent(item.workflow_id), { approve, note }))));
  }
}

async function renderSandboxes(runs) {
  const waiting = runs.filter((r) => r.awaiting_review);
  const views = await Promise.all(waiting.map((r) =>
    api("GET", "/v1/sandboxes/" + encodeURIComponent(r.workflow_id)).catch(() => null)));
  const list = $("sandboxes-list");
  list.replaceChildren();
  const shown = views.filter((v) => v && v.view);
  $("sandboxes-empty").hidden = shown.length > 0;
  for (const v of shown) {
    const view = v.view, res = view.result || {};
    const files = (res.files || []).map((f) => el("li", { text: (f.path || f.name) + " (" + (f.size ?? f.bytes ?? "?") + " bytes)" }));
    list.append(el("li", { "data-workflow-id": v.workflow_id },
      el("h3", { text: "Sandbox " + view.sandbox_id + " — " + (view.origin && view.origin.name || "") }),
      el("p", { text: "Backend: " + (view.backend || "?") + "; step: " + view.step + "; exit code: " + res.exit_code }),
      el("h4", { text: "Code" }), el("pre", { class: "code", text: view.code || (view.argv || []).join(" ") }),
      el("h4", { text: "Output" }), el("pre", { class: "stdout", text: res.stdout }),
      el("h4", { text: "Errors" }), el("pre", { class: "stderr", text: res.stderr }),
      el("h4", { text: "Files" }), files.length ? el("ul", {}, ...files) : el("p", { text: "none" }),
      ...decisionControls("sandboxes", v.workflow_id, ["Approve output", "Reject output"],
        (approve, note) => api("POST", "/v1/sandboxes/" + encodeURIComponent(v.workflow_id) + "/decision",
                               { approve, note }))));
  }
}

function renderRequests(items) {
  const body = $("requests-body");
  body.replaceChildren();
  for (const r of items) {
    const open = el("button", { type: "button", on: { click: () => openRequest(r) }, text: r.request_id });
    body.append(el("tr", {}, el("td", {}, open), el("td", { text: r.status }), el("td", { text: r.stage || "" }),
      el("td", { text: r.model || "" }), el("td", { text: r.started ? new Date(r.started).toLocaleString() : "" })));
  }
}

// --- one request: timeline and its (streamed) answer ----------------------------------------------------------
async function openRequest(r) {
  $("detail").hidden = false;
  setText("detail-title", "Request " + r.request_id);
  setText("detail-error", "");
  $("detail-answer").textContent = "";
  $("detail-timeline").replaceChildren();
  const ui = state.config && state.config.temporal_ui_url;
  const link = $("detail-temporal");
  link.hidden = !ui;
  if (ui) link.href = ui + "/namespaces/" + encodeURIComponent(state.config.namespace) + "/workflows/" +
                      encodeURIComponent(r.workflow_id);
  $("detail-title").focus();
  followAnswer(r.request_id);
  try {
    const t = await api("GET", "/v1/requests/" + encodeURIComponent(r.request_id) + "/timeline");
    $("detail-timeline").replaceChildren(...t.entries.map((e) => el("li", { text: describe(e) })));
  } catch (e) { setText("detail-error", e.message); }
}

function describe(entry) {
  const { t_ms, kind, event_id, ...rest } = entry;
  const details = Object.entries(rest).filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => k + "=" + (typeof v === "object" ? JSON.stringify(v) : v)).join(" ");
  return "+" + t_ms + " ms  " + kind + (details ? "  " + details : "");
}

async function followAnswer(requestId) {
  if (state.stream) state.stream.abort();
  const ctrl = new AbortController();
  state.stream = ctrl;
  const out = $("detail-answer");
  let text = "";
  try {
    const resp = await fetch("/v1/chat/completions/" + encodeURIComponent(requestId) + "/stream",
      { headers: { Authorization: "Bearer " + sessionStorage.getItem(KEY) }, signal: ctrl.signal });
    if (!resp.ok) { setText("detail-error", "answer: " + resp.status); return; }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const event = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ")) continue;
          const data = line.slice(6);
          if (data === "[DONE]") continue;
          const msg = JSON.parse(data);
          if (msg.error) { setText("detail-error", msg.error.message); continue; }
          for (const c of msg.choices || []) if (c.delta && c.delta.content) text += c.delta.content;
          out.textContent = visible(text);
        }
      }
    }
  } catch (e) { if (e.name !== "AbortError") setText("detail-error", "answer: " + e.message); }
}

// --- wiring ---------------------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("api-key").value); });
  $("signout").addEventListener("click", () => signOut(""));
  $("engage-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      renderLockdown(await api("POST", "/v1/lockdown/engage", { reason: $("engage-reason").value }));
      setText("lockdown-error", "");
    } catch (e) { setText("lockdown-error", e.message); }
    delete state.seen.lockdown;
  });
  $("release-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const secret = $("release-secret");
    try {
      renderLockdown(await api("POST", "/v1/lockdown/release", { secret: secret.value }));
      setText("lockdown-error", "");
    } catch (e) { setText("lockdown-error", e.message); }
    secret.value = "";
    delete state.seen.lockdown;
  });
  const key = sessionStorage.getItem(KEY);
  if (key) signIn(key); else $("api-key").focus();
});
