// v2gstack CSMS dashboard: plain JS, no library. Data from the REST API (session cookie + X-CSRF-Token) and the
// live event stream /api/live (server-sent events). Text is always set with textContent (never parsed as HTML).
"use strict";

const S = {
  user: null, role: null, csrf: null, stations: new Map(), sessions: new Map(), page: 0, perPage: 50,
  filter: "", source: null, dirty: true, route: "", roles: { viewer: 1, operator: 2, admin: 3 },
  aggregate: [], grid: null,
};
const WINDOW_S = 900; // the grid chart: the last 15 minutes and the next 15
const $ = (id) => document.getElementById(id);

function el(tag, props = {}, children = []) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

async function api(method, path, body) {
  const headers = {};
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    if (S.csrf) headers["X-CSRF-Token"] = S.csrf;
  }
  const r = await fetch(path, { method, headers, credentials: "same-origin",
    body: method === "GET" ? undefined : JSON.stringify(body ?? {}) });
  let data = null;
  const text = await r.text();
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (r.status === 401 && path !== "/api/login" && path !== "/api/session") showLogin("Your session ended: log in again.");
  return { ok: r.ok, status: r.status, data };
}

function flash(msg, isError = false) {
  const f = $("flash");
  f.textContent = msg;
  f.className = isError ? "error" : "";
}

const canOperate = () => (S.roles[S.role] || 0) >= S.roles.operator;
const kw = (w) => (w === null || w === undefined ? "" : (w / 1000).toFixed(2));

// ----- login -----
function showLogin(msg = "") {
  if (S.source) { S.source.close(); S.source = null; }
  S.csrf = null;
  $("app").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = msg;
}

async function doLogin(ev) {
  ev.preventDefault();
  const r = await api("POST", "/api/login", { name: $("login-name").value, password: $("login-password").value });
  $("login-password").value = "";
  if (!r.ok) {
    $("login-error").textContent = r.status === 429 ? "Too many failed logins: try again later."
      : "Wrong user name or password.";
    return;
  }
  startApp(r.data);
}

async function doLogout() {
  await api("POST", "/api/logout", {});
  S.stations.clear(); S.sessions.clear();
  showLogin("Logged out.");
}

async function startApp(session) {
  S.user = session.name; S.role = session.role; S.csrf = session.csrfToken;
  $("login").hidden = true;
  $("app").hidden = false;
  $("who").textContent = `${S.user} (${S.role})`;
  document.body.dataset.role = S.role;
  for (const b of document.querySelectorAll(".op")) b.hidden = !canOperate();
  startLive();
  await loadStations();
  route();
}

// ----- live stream -----
function startLive() {
  if (S.source) S.source.close();
  S.source = new EventSource("/api/live");
  S.source.addEventListener("open", () => { $("live-state").textContent = "live"; });
  S.source.addEventListener("error", () => { $("live-state").textContent = "reconnecting…"; });
  S.source.addEventListener("tick", (ev) => onTick(JSON.parse(ev.data)));
}

function onTick(t) {
  for (const s of t.sessions) {
    const key = `${s.stationId}/${s.transactionId}`;
    const old = S.sessions.get(key);
    const points = (old ? old.points : []).concat(s.points);
    if (points.length > 720) points.splice(0, points.length - 720);
    S.sessions.set(key, { ...s, points });
  }
  for (const [sid, tx] of t.removed) S.sessions.delete(`${sid}/${tx}`);
  for (const row of t.stations) {
    const old = S.stations.get(row.id) || { id: row.id };
    S.stations.set(row.id, { ...old, ...row, connectorStatus: { ...(old.connectorStatus || {}), ...row.connectorStatus } });
  }
  const tt = t.totals;
  $("totals").textContent = `${tt.stationsOnline} online · ${tt.sessions} charging · import ${kw(tt.powerImportW)} kW · export ${kw(tt.powerExportW)} kW`;
  $("grid-aggregate").textContent = `import ${kw(tt.powerImportW)} kW, export ${kw(tt.powerExportW)} kW`;
  S.aggregate.push([t.time, tt.powerImportW - tt.powerExportW]);
  if (S.aggregate.length > WINDOW_S) S.aggregate.splice(0, S.aggregate.length - WINDOW_S);
  if (!$("page-grid").hidden) drawGrid();
  S.dirty = true;
  requestAnimationFrame(render);
}

async function loadStations() {
  const r = await api("GET", "/api/stations");
  if (!r.ok) return;
  for (const st of r.data) S.stations.set(st.id, { ...st, ...(S.stations.get(st.id) || {}) });
  S.dirty = true;
  render();
}

// ----- overview -----
function render() {
  if (!S.dirty || $("app").hidden) return;
  S.dirty = false;
  renderSessions();
  renderStations();
}

function renderSessions() {
  const body = $("sessions").tBodies[0];
  const list = [...S.sessions.values()].sort((a, b) => a.started - b.started);
  $("session-count").textContent = `(${list.filter((s) => s.ended === null).length} running)`;
  const rows = [];
  for (const s of list.slice(0, 200)) {
    const canvas = el("canvas", { class: "spark", width: "160", height: "36", "data-points": String(s.points.length) });
    const open = el("a", { href: `#/session/${encodeURIComponent(s.stationId)}/${encodeURIComponent(s.transactionId)}`,
      text: "timeline", class: "open-session" });
    const actions = el("td", {}, [open]);
    if (canOperate() && s.ended === null) {
      actions.append(" ", el("button", { type: "button", class: "stop", text: "Stop",
        onclick: () => remoteStop(s.stationId, s.transactionId) }));
    }
    const tr = el("tr", { "data-key": `${s.stationId}/${s.transactionId}`, "data-state": s.state }, [
      el("td", { text: s.stationId }), el("td", { text: s.transactionId }), el("td", { text: String(s.evseId ?? "") }),
      el("td", { text: s.protocol || "" }), el("td", { text: s.state + (s.chargingState ? ` (${s.chargingState})` : "") }),
      el("td", { text: kw(s.powerImportW), class: "p-import" }), el("td", { text: kw(s.powerExportW) }),
      el("td", { text: s.energyImportWh === undefined ? "" : (s.energyImportWh / 1000).toFixed(3) }),
      el("td", {}, [canvas]), actions]);
    rows.push(tr);
    drawChart(canvas, [{ color: "#2a6fdb", pts: s.points.map((p) => [p[0], p[1]]) },
      { color: "#137333", pts: s.points.map((p) => [p[0], p[2]]) }], { axes: false });
  }
  body.replaceChildren(...rows);
}

function stationMatches(st, f) {
  if (!f) return true;
  const statuses = Object.values(st.connectorStatus || {}).join(" ").toLowerCase();
  return st.id.toLowerCase().includes(f) || statuses.includes(f) || (f === "online" && st.online)
    || (f === "offline" && !st.online);
}

function renderStations() {
  const f = S.filter.trim().toLowerCase();
  const all = [...S.stations.values()].filter((st) => stationMatches(st, f)).sort((a, b) => a.id.localeCompare(b.id));
  const pages = Math.max(1, Math.ceil(all.length / S.perPage));
  S.page = Math.min(S.page, pages - 1);
  $("page-info").textContent = `page ${S.page + 1} / ${pages}`;
  $("station-count").textContent = `(${S.stations.size}, ${[...S.stations.values()].filter((s) => s.online).length} online)`;
  const rows = all.slice(S.page * S.perPage, (S.page + 1) * S.perPage).map((st) => {
    const conns = Object.entries(st.connectorStatus || {}).map(([k, v]) => `${k}: ${v}`).join(", ");
    const actions = el("td");
    if (canOperate() && st.online) {
      actions.append(el("button", { type: "button", text: "Status?", title: "TriggerMessage StatusNotification",
        onclick: () => command(st.id, "trigger-message", { requestedMessage: "StatusNotification" }) }), " ",
      el("button", { type: "button", text: "Reset", title: "Reset OnIdle",
        onclick: () => { if (confirm(`Reset ${st.id} when idle?`)) command(st.id, "reset", { type: "OnIdle" }); } }));
    }
    return el("tr", { "data-station": st.id }, [el("td", { text: st.id }),
      el("td", { text: st.online ? "online" : "offline", class: st.online ? "online" : "offline" }),
      el("td", { text: st.ocppVersion || "" }), el("td", { text: conns }),
      el("td", { text: [st.vendor, st.model].filter(Boolean).join(" / ") }), actions]);
  });
  $("stations").tBodies[0].replaceChildren(...rows);
}

async function command(stationId, name, payload) {
  const r = await api("POST", `/api/stations/${encodeURIComponent(stationId)}/${name}`, payload);
  if (r.ok) flash(`${r.data.action} to ${stationId}: ${JSON.stringify(r.data.response)}`);
  else flash(`${name} to ${stationId} refused (${r.status}): ${r.data && r.data.detail ? r.data.detail : ""}`, true);
  return r;
}

function remoteStop(stationId, txId) {
  return command(stationId, "request-stop", { transactionId: txId });
}

// ----- charts -----
function drawChart(canvas, series, opts = {}) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = opts.axes === false ? 2 : 40;
  ctx.clearRect(0, 0, w, h);
  const pts = series.flatMap((s) => s.pts.filter((p) => p[1] !== null && p[1] !== undefined));
  if (!pts.length) return;
  let x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]));
  let y1 = Math.max(0, ...pts.map((p) => p[1]));
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === 0) y1 = 1;
  const X = (x) => pad + ((x - x0) / (x1 - x0)) * (w - pad - 4);
  const Y = (y) => h - pad / 2 - (y / y1) * (h - pad);
  if (opts.axes !== false) {
    ctx.fillStyle = "#6b7480"; ctx.font = "11px sans-serif";
    ctx.fillText(`${(y1 / 1000).toFixed(1)} kW`, 2, 12);
    ctx.fillText("0", 2, h - pad / 2);
    ctx.fillText(`${Math.round(x1 - x0)} s`, w - 40, h - 4);
  }
  for (const s of series) {
    const p = s.pts.filter((q) => q[1] !== null && q[1] !== undefined);
    if (!p.length) continue;
    ctx.strokeStyle = s.color; ctx.lineWidth = 1.5; ctx.beginPath();
    p.forEach((q, i) => {
      if (i === 0) ctx.moveTo(X(q[0]), Y(q[1]));
      else if (s.step) { ctx.lineTo(X(q[0]), Y(p[i - 1][1])); ctx.lineTo(X(q[0]), Y(q[1])); }
      else ctx.lineTo(X(q[0]), Y(q[1]));
    });
    if (s.step && s.end) ctx.lineTo(X(s.end), Y(p[p.length - 1][1]));
    ctx.stroke();
  }
}

// ----- session page -----
async function showSession(stationId, txId) {
  $("session-title").textContent = `Session ${txId} at ${stationId}`;
  $("session-stop").onclick = async () => { await remoteStop(stationId, txId); setTimeout(() => showSession(stationId, txId), 1500); };
  $("session-reload").onclick = () => showSession(stationId, txId);
  const [tx, tl] = await Promise.all([
    api("GET", `/api/transactions/${encodeURIComponent(txId)}?station=${encodeURIComponent(stationId)}`),
    api("GET", `/api/timeline/${encodeURIComponent(txId)}`)]);
  if (!tx.ok) { $("session-facts").textContent = `no transaction: ${tx.status}`; return; }
  const t = tx.data, iso = t.iso15118 || {};
  $("session-facts").textContent = `state ${t.state}${t.stoppedReason ? ` (${t.stoppedReason})` : ""} · idToken ${t.idToken || "-"} · ` +
    `EVSE ${t.evseId ?? "-"} · ${iso.protocol || "no ISO 15118"}${iso.sessionId ? ` SessionID ${iso.sessionId}` : ""} · started ${t.startedAt || "-"}` +
    (t.endedAt ? ` · ended ${t.endedAt}` : "");
  $("session-stop").hidden = !canOperate() || t.state === "Ended";
  $("session-chart").dataset.state = t.state;
  drawSessionChart(t);
  renderTimeline(tl.ok ? tl.data : []);
}

function drawSessionChart(t) {
  const time = (s) => Date.parse(s) / 1000;
  const mv = t.meterValues || [];
  const series = (m) => mv.filter((v) => v.measurand === m && !v.phase).map((v) => [time(v.timestamp), v.value]);
  const sched = [];
  let end;
  for (const m of t.messages || []) {
    const p = m.payload || {};
    const sch = m.action === "NotifyEVChargingSchedule" ? p.chargingSchedule
      : m.action === "SetChargingProfile" ? ((p.chargingProfile || {}).chargingSchedule || [])[0] : null;
    if (!sch) continue;
    const start = time(p.timeBase || sch.startSchedule || m.time);
    const volts = sch.chargingRateUnit === "A" ? 230 * 3 : 1;
    for (const per of sch.chargingSchedulePeriod || []) sched.push([start + per.startPeriod, per.limit * volts]);
    if (sch.duration) end = start + sch.duration;
  }
  const imp = series("Power.Active.Import"), exp = series("Power.Active.Export");
  const canvas = $("session-chart");
  canvas.dataset.points = String(imp.length);
  canvas.dataset.schedule = String(sched.length);
  drawChart(canvas, [{ color: "#b06000", pts: sched, step: true, end: end || (imp.length ? imp[imp.length - 1][0] : undefined) },
    { color: "#2a6fdb", pts: imp }, { color: "#137333", pts: exp }]);
}

function isError(e) {
  const d = e.data || {};
  const text = `${e.kind} ${e.name} ${e.details}`;
  return /error|fail|timeout|reject|invalid|refus/i.test(text) || (d.responseCode && !/^OK/.test(d.responseCode));
}

function renderTimeline(entries) {
  const detail = $("timeline-detail");
  detail.textContent = "";
  const rows = entries.map((e, i) => {
    const tr = el("tr", { class: `clickable${isError(e) ? " error" : ""}`, "data-i": String(i) }, [
      el("td", { text: e.wall }), el("td", { text: e.source }), el("td", { text: e.protocol }),
      el("td", { text: e.direction }), el("td", { text: e.name }), el("td", { text: e.details })]);
    tr.addEventListener("click", () => {
      for (const r of document.querySelectorAll("#timeline tr.selected")) r.classList.remove("selected");
      tr.classList.add("selected");
      detail.textContent = JSON.stringify(e.data, null, 2);
    });
    return tr;
  });
  $("timeline").tBodies[0].replaceChildren(...rows);
}

// ----- certificates, Plug & Charge, grid -----
async function showPki() {
  const [roots, sum] = await Promise.all([api("GET", "/api/roots"), api("GET", "/api/dashboard/summary")]);
  const now = Date.now();
  $("roots").tBodies[0].replaceChildren(...(roots.ok ? roots.data : []).map((r) => {
    const days = Math.floor((Date.parse(r.notAfter) - now) / 86400000);
    return el("tr", {}, [el("td", { text: r.kind }), el("td", { text: r.subject }), el("td", { text: r.notAfter }),
      el("td", { text: String(days), class: days < 0 ? "error" : days < 30 ? "warn" : "" })]);
  }));
  const fill = (id, rows, cols) => $(id).tBodies[0].replaceChildren(...rows.map((r) =>
    el("tr", {}, cols.map((c) => el("td", { text: String(r[c]) })))));
  if (sum.ok) {
    fill("pnc", sum.data.plugAndCharge, ["action", "status", "count"]);
    fill("auths", sum.data.authorizations, ["source", "status", "count"]);
    fill("protocols", sum.data.sessionsByProtocol, ["protocol", "count"]);
  }
}

async function showGrid() {
  const r = await api("GET", "/api/grid/signals");
  S.grid = r.ok ? r.data : null;
  $("grid-state").textContent = r.ok ? `grid control on (dispatch ${r.data.dispatch ? "on" : "off"})`
    : (r.data && r.data.detail) || `unavailable (${r.status})`;
  $("grid-report").textContent = r.ok ? JSON.stringify(r.data, null, 2) : "";
  const signals = r.ok ? r.data.signals || [] : [];
  $("grid-signals").tBodies[0].replaceChildren(...signals.map((g) => el("tr", {}, [
    el("td", { text: g.id }), el("td", { text: `${g.target.kind} ${g.target.id}` }), el("td", { text: g.opt }),
    el("td", { text: String(g.priority) }),
    el("td", { text: g.intervals.map((i) => `${i.start}..${i.end}` + ["importLimitW", "exportLimitW", "setpointW", "price"]
      .filter((k) => i[k] !== undefined).map((k) => ` ${k}=${i[k]}`).join("")).join("; ") })])));
  drawGrid();
}

function drawGrid() {
  const now = Date.now() / 1000, lo = now - WINDOW_S, hi = now + WINDOW_S;
  const clip = (pts) => pts.filter((p) => p[0] >= lo && p[0] <= hi);
  const limits = [], plan = [];
  for (const g of (S.grid && S.grid.signals) || []) {
    if (g.target.kind !== "site") continue;
    for (const i of g.intervals) {
      const v = i.importLimitW ?? i.setpointW;
      if (v === undefined) continue;
      const a = Math.max(lo, Date.parse(i.start) / 1000), b = Math.min(hi, Date.parse(i.end) / 1000);
      if (a < b) limits.push({ color: "#b06000", pts: [[a, v], [b, v]] }); // one segment per interval
    }
  }
  const p = S.grid && S.grid.plan;
  if (p) p.siteW.forEach((w, n) => plan.push([Date.parse(p.start) / 1000 + n * p.stepS, w]));
  const canvas = $("grid-chart");
  canvas.dataset.points = String(S.aggregate.length);
  drawChart(canvas, [...limits, { color: "#8e44ad", pts: clip(plan), step: true, end: hi },
    { color: "#2a6fdb", pts: clip(S.aggregate) }]);
}

// ----- routing -----
function route() {
  const h = location.hash || "#/";
  S.route = h;
  for (const p of ["overview", "session", "pki", "grid"]) $(`page-${p}`).hidden = true;
  const m = h.match(/^#\/session\/([^/]+)\/(.+)$/);
  if (m) { $("page-session").hidden = false; showSession(decodeURIComponent(m[1]), decodeURIComponent(m[2])); }
  else if (h === "#/pki") { $("page-pki").hidden = false; showPki(); }
  else if (h === "#/grid") { $("page-grid").hidden = false; showGrid(); }
  else { $("page-overview").hidden = false; S.dirty = true; render(); }
}

async function boot() {
  $("login-form").addEventListener("submit", doLogin);
  $("logout").addEventListener("click", doLogout);
  $("station-filter").addEventListener("input", (e) => { S.filter = e.target.value; S.page = 0; S.dirty = true; render(); });
  $("page-prev").addEventListener("click", () => { S.page = Math.max(0, S.page - 1); S.dirty = true; render(); });
  $("page-next").addEventListener("click", () => { S.page += 1; S.dirty = true; render(); });
  window.addEventListener("hashchange", () => { if (!$("app").hidden) route(); });
  const r = await api("GET", "/api/session");
  if (r.ok && r.data.loggedIn) startApp(r.data); else showLogin();
}

document.addEventListener("DOMContentLoaded", boot);
