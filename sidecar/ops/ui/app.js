// The operators' dashboard. Plain ES module, no dependencies, loaded under a strict CSP.
// The admin token lives in this module's memory only (never storage, never the URL).
// Everything shown comes from /v1/leases/stream: a snapshot, then events (no polling).

const HOT_SECONDS = 60;
const RECENT_TYPES = new Set(["rotated", "rotation_failed", "quarantined"]);

const state = {
  token: "",
  approver: "",
  abort: null,
  offsetMs: 0,
  leases: new Map(),
  approvals: [],
  resources: new Map(),
  recent: [],
};

const $ = (id) => {
  const node = document.getElementById(id);
  if (!node) throw new Error(`#${id} is missing`);
  return node;
};

// What must never reach the page raw: control, format (bidi overrides, zero-width) and separator
// characters. The same rule as the CLI's escapeText (sidecar/util/text.ts).
const NON_PRINTABLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;

/** `s` with every non-printable character shown literally: ESC as `\x1b`, U+202E as `\u202e`. */
function show(s) {
  return String(s).replace(NON_PRINTABLE, (ch) => {
    const cp = ch.codePointAt(0) ?? 0;
    if (cp < 0x100) return `\\x${cp.toString(16).padStart(2, "0")}`;
    return cp > 0xffff ? `\\u{${cp.toString(16)}}` : `\\u${cp.toString(16).padStart(4, "0")}`;
  });
}

/**
 * Builds an element; children are nodes or text. Data is only ever text (textContent, never
 * HTML) and shown escaped; `data-*` attributes keep the raw value the API needs back.
 */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = show(v);
    else if (k === "title") node.title = show(v);
    else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(show(c)));
  return node;
}

const serverNow = () => Date.now() + state.offsetMs;

function countdown(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${String(m).padStart(2, "0")}:${sec}` : `${m}:${sec}`;
}

function clock(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString().slice(11, 19);
}

function setStatus(text, kind) {
  const s = $("status");
  s.textContent = text;
  s.className = `status ${kind ?? ""}`;
}

let noticeTimer;

function notice(text, bad = false) {
  const n = $("notice");
  n.textContent = show(text);
  n.className = bad ? "notice bad" : "notice";
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    n.hidden = true;
  }, 6000);
}

/** Calls the API with the admin token; throws an Error carrying the server's message. */
async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    cache: "no-store",
    headers: {
      authorization: `Bearer ${state.token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : {};
  if (!res.ok) {
    const e = new Error(json?.error?.message ?? `HTTP ${res.status}`);
    e.status = res.status;
    throw e;
  }
  return json;
}

// ---- server-sent events over fetch (EventSource cannot send an Authorization header) ----

async function* readSse(body) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let event = "";
  let data = [];
  let id;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true });
    let nl = buf.search(/\r\n|\n|\r/);
    while (nl >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(buf[nl] === "\r" && buf[nl + 1] === "\n" ? nl + 2 : nl + 1);
      if (line === "") {
        if (data.length) yield { event: event || "message", id, data: data.join("\n") };
        event = "";
        data = [];
      } else if (!line.startsWith(":")) {
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let v = colon < 0 ? "" : line.slice(colon + 1);
        if (v.startsWith(" ")) v = v.slice(1);
        if (field === "event") event = v;
        else if (field === "data") data.push(v);
        else if (field === "id") id = v;
      }
      nl = buf.search(/\r\n|\n|\r/);
    }
  }
}

async function follow() {
  let delay = 1000;
  while (state.token) {
    const ac = new AbortController();
    state.abort = ac;
    try {
      const res = await fetch("/v1/leases/stream", {
        headers: { authorization: `Bearer ${state.token}`, accept: "text/event-stream" },
        cache: "no-store",
        signal: ac.signal,
      });
      if (res.status === 401) {
        signOut("The sidecar refused the token.");
        return;
      }
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      for await (const msg of readSse(res.body)) {
        const data = JSON.parse(msg.data);
        if (msg.event === "snapshot") {
          applySnapshot(data);
          setStatus("live", "live");
          delay = 1000;
        } else if (msg.event === "message") {
          applyEvent(data);
        }
      }
      if (!state.token) return;
      setStatus("stream ended; reconnecting", "down");
    } catch {
      if (!state.token || ac.signal.aborted) return;
      setStatus("disconnected; reconnecting", "down");
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 10_000);
  }
}

// ---- state ----

function setAccount(resource, account, fields) {
  if (!resource || !account) return;
  let accounts = state.resources.get(resource);
  if (!accounts) {
    accounts = new Map();
    state.resources.set(resource, accounts);
  }
  accounts.set(account, { ...(accounts.get(account) ?? { name: account }), ...fields });
}

function applySnapshot(s) {
  const now = Date.parse(s.now);
  state.offsetMs = Number.isNaN(now) ? 0 : now - Date.now();
  state.leases = new Map(s.leases.filter((l) => l.state === "active").map((l) => [l.id, l]));
  // Past the snapshot's cap, leases issued since still arrive as events; the older rest do not.
  state.leasesTruncated = s.leases_truncated === true;
  state.approvals = s.approvals;
  state.resources = new Map(s.resources.map((r) => [r.name, new Map(r.accounts.map((a) => [a.name, a]))]));
  state.recent = s.recent.slice(0, 25);
  renderAll();
}

function applyEvent(e) {
  switch (e.type) {
    case "issued":
    case "renewed":
    case "expiring_soon":
      if (e.lease?.state === "active") state.leases.set(e.lease.id, e.lease);
      else if (e.lease) state.leases.delete(e.lease.id);
      setAccount(e.resource, e.account, { state: "leased", lease_id: e.lease_id });
      break;
    case "ended":
      state.leases.delete(e.lease_id);
      setAccount(e.resource, e.account, { state: "rotating", lease_id: undefined });
      break;
    case "rotated":
      setAccount(e.resource, e.account, { state: "available", failures: 0, last_rotated_at: e.time });
      break;
    case "rotation_failed": {
      const cur = state.resources.get(e.resource)?.get(e.account);
      if (cur?.state !== "quarantined") setAccount(e.resource, e.account, { state: "rotating" });
      break;
    }
    case "quarantined":
      setAccount(e.resource, e.account, { state: "quarantined" });
      break;
    case "approval_requested":
    case "approval_decided":
      if (Array.isArray(e.approvals)) state.approvals = e.approvals;
      break;
    default:
      break;
  }
  if (RECENT_TYPES.has(e.type)) {
    state.recent.unshift(e);
    state.recent.length = Math.min(state.recent.length, 25);
  }
  renderAll();
}

// ---- rendering ----

function renderAll() {
  renderLeases();
  renderApprovals();
  renderAccounts();
  renderRecent();
}

function renderLeases() {
  const body = $("leases").tBodies[0];
  const leases = [...state.leases.values()].sort(
    (a, b) => Date.parse(a.expires_at) - Date.parse(b.expires_at),
  );
  body.replaceChildren(
    ...leases.map((l) =>
      el(
        "tr",
        { "data-lease-id": l.id },
        el("td", { text: l.resource }),
        el("td", { text: l.account }),
        el("td", { class: "agent", text: l.agent }),
        el("td", { text: l.task?.id ?? "", title: l.task?.description ?? "" }),
        el("td", {
          text: l.intent?.tool ? `${l.intent.action} (${l.intent.tool})` : (l.intent?.action ?? ""),
        }),
        el("td", { class: "left" }),
        el("td", {}, el("progress", { max: 1, value: 0 })),
        el(
          "td",
          {},
          el("button", { type: "button", class: "danger revoke-lease", "data-id": l.id, text: "Revoke" }),
          " ",
          el("button", {
            type: "button",
            class: "danger revoke-agent",
            "data-agent": l.agent,
            text: "Revoke agent",
            title: `Revoke every lease of ${l.agent}`,
          }),
        ),
      ),
    ),
  );
  $("lease-count").textContent = state.leasesTruncated ? `${leases.length}+` : String(leases.length);
  $("no-leases").hidden = leases.length > 0;
  tick();
}

/** Updates countdowns and bars; runs several times a second. */
function tick() {
  const now = serverNow();
  for (const row of $("leases").tBodies[0].rows) {
    const l = state.leases.get(row.dataset.leaseId ?? "");
    if (!l) continue;
    const exp = Date.parse(l.expires_at);
    const life = Math.max(1, exp - Date.parse(l.issued_at));
    // Clock offset and latency must never show more time than the lease was given.
    const left = Math.min(exp - now, life);
    const cell = row.querySelector("td.left");
    if (cell) {
      cell.textContent = left > 0 ? countdown(left) : "expiring…";
      cell.dataset.seconds = String(Math.max(0, Math.ceil(left / 1000)));
    }
    const bar = row.querySelector("progress");
    if (bar) bar.value = Math.min(1, Math.max(0, left / life));
    row.classList.toggle("hot", left <= HOT_SECONDS * 1000);
  }
}

function renderApprovals() {
  const body = $("approvals").tBodies[0];
  const list = (state.approvals ?? []).filter(
    (a) => a.status === "pending" && Date.parse(a.expires_at) > serverNow(),
  );
  body.replaceChildren(
    ...list.map((a) =>
      el(
        "tr",
        { "data-approval-id": a.id },
        el("td", { class: "agent", text: a.agent }),
        el("td", { text: a.resource }),
        el("td", { text: a.task?.id ?? "", title: a.task?.description ?? "" }),
        el("td", {
          text: a.intent?.tool ? `${a.intent.action} (${a.intent.tool})` : (a.intent?.action ?? ""),
        }),
        el("td", { text: `${a.ttl}s` }),
        el("td", { text: clock(a.expires_at) }),
        el(
          "td",
          {},
          el("button", { type: "button", class: "approve", "data-id": a.id, text: "Approve" }),
          " ",
          el("button", { type: "button", class: "danger deny", "data-id": a.id, text: "Deny" }),
        ),
      ),
    ),
  );
  $("approval-count").textContent = state.approvals === null ? "(approvals are off)" : String(list.length);
  $("no-approvals").hidden = list.length > 0;
}

function renderAccounts() {
  const root = $("accounts");
  const names = [...state.resources.keys()].sort();
  root.replaceChildren(
    ...names.map((name) => {
      const accounts = [...(state.resources.get(name)?.values() ?? [])].sort((a, b) =>
        a.name.localeCompare(b.name),
      );
      const counts = {};
      for (const a of accounts) counts[a.state] = (counts[a.state] ?? 0) + 1;
      const summary = Object.entries(counts)
        .map(([s, n]) => `${n} ${s}`)
        .join(", ");
      const stuck = accounts.some((a) => a.state === "quarantined");
      return el(
        "div",
        { class: "resource", "data-resource": name },
        el(
          "h3",
          {},
          name,
          el("span", { class: "count", text: summary }),
          stuck
            ? el("button", { type: "button", class: "rotate", "data-resource": name, text: "Retry rotation" })
            : "",
        ),
        el(
          "table",
          {},
          el(
            "tbody",
            {},
            ...accounts.map((a) =>
              el(
                "tr",
                { "data-account": `${name}/${a.name}` },
                el("td", { text: a.name }),
                el("td", {}, el("span", { class: `state state-${a.state}`, text: a.state })),
                el("td", { text: a.failures ? `${a.failures} failures` : "" }),
                el("td", { text: a.last_rotated_at ? `rotated ${clock(a.last_rotated_at)}` : "" }),
              ),
            ),
          ),
        ),
      );
    }),
  );
}

function renderRecent() {
  $("recent").replaceChildren(
    ...state.recent.map((e) =>
      el(
        "li",
        { class: e.type },
        el("time", { dateTime: e.time, text: clock(e.time) }),
        `${e.type.replace("_", " ")} ${e.resource}/${e.account ?? ""}${e.reason ? `: ${e.reason}` : ""}`,
      ),
    ),
  );
  $("no-recent").hidden = state.recent.length > 0;
}

// ---- actions ----

async function act(button, run, done) {
  button.disabled = true;
  try {
    await run();
    notice(done);
  } catch (err) {
    notice(err.message, true);
    if (err.status === 401) signOut("The sidecar refused the token.");
  } finally {
    button.disabled = false;
  }
}

function onBoardClick(ev) {
  const button = ev.target instanceof Element ? ev.target.closest("button") : null;
  if (!button) return;
  const id = button.dataset.id;
  const approver = state.approver || "dashboard";
  if (button.classList.contains("revoke-lease") && id) {
    void act(
      button,
      () =>
        api("POST", `/v1/leases/${encodeURIComponent(id)}/revoke`, { reason: "revoked from the dashboard" }),
      "Lease revoked.",
    );
  } else if (button.classList.contains("revoke-agent")) {
    const agent = button.dataset.agent ?? "";
    if (!window.confirm(`Revoke every active lease of ${show(agent)}?`)) return;
    void act(
      button,
      () => api("POST", "/v1/agents/revoke", { agent, reason: "revoked from the dashboard" }),
      `Leases of ${agent} revoked.`,
    );
  } else if (button.classList.contains("approve") && id) {
    void act(
      button,
      () => api("POST", `/v1/approvals/${encodeURIComponent(id)}/approve`, { approver }),
      "Approved.",
    );
  } else if (button.classList.contains("deny") && id) {
    void act(
      button,
      () => api("POST", `/v1/approvals/${encodeURIComponent(id)}/deny`, { approver }),
      "Denied.",
    );
  } else if (button.classList.contains("rotate")) {
    const name = button.dataset.resource ?? "";
    void act(
      button,
      () => api("POST", `/v1/resources/${encodeURIComponent(name)}/rotate`, {}),
      `Rotation of ${name} retried.`,
    );
  }
}

// ---- sign-in ----

function signOut(message) {
  state.token = "";
  state.abort?.abort();
  state.leases.clear();
  state.approvals = [];
  state.resources.clear();
  state.recent = [];
  $("board").hidden = true;
  $("login").hidden = false;
  $("logout").hidden = true;
  $("login-error").textContent = message ?? "";
  setStatus("signed out");
}

async function signIn(ev) {
  ev.preventDefault();
  const input = $("token");
  const token = input.value.trim();
  input.value = "";
  if (!token) return;
  state.token = token;
  state.approver = $("approver-name").value.trim();
  try {
    await api("GET", "/v1/leases");
  } catch (err) {
    state.token = "";
    $("login-error").textContent = err.status === 401 ? "That token was refused." : show(err.message);
    return;
  }
  $("login-error").textContent = "";
  $("login").hidden = true;
  $("board").hidden = false;
  $("logout").hidden = false;
  setStatus("connecting");
  void follow();
}

$("login-form").addEventListener("submit", signIn);
$("logout").addEventListener("click", () => signOut());
$("board").addEventListener("click", onBoardClick);
setInterval(tick, 250);
setInterval(renderApprovals, 5000);
