// bessfleet operator dashboard: plain JS, no build step, no network beyond this app.
"use strict";

const state = { session: null, sites: new Map(), selected: null, streamAbort: null, stream: "offline", events: 0, alerts: [], alertCount: 0 };
const $ = (id) => document.getElementById(id);
const viewTz = () => state.tz || "UTC";

// ---- formatting: numbers always carry units; times in the market's local time ----
const fmtNum = (v, digits) => {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const r = Number(Number(v).toFixed(digits));
  return (r === 0 ? 0 : r).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
};
const fmtMW = (v) => v === null || v === undefined ? "–" : `${fmtNum(v, 2)} MW`;
const fmtMWh = (v) => v === null || v === undefined ? "–" : `${fmtNum(v, 1)} MWh`;
const fmtPct = (frac) => frac === null || frac === undefined ? "–" : `${fmtNum(frac * 100, 1)} %`;
const fmtUSD = (v) => v === null || v === undefined ? "–" :
  `${v < 0 ? "−" : ""}$${fmtNum(Math.abs(v), 0)}`;
function fmtTime(iso, tz) {
  if (!iso) return "–";
  const d = new Date(iso);
  const f = new Intl.DateTimeFormat("en-US", { timeZone: tz || "UTC", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false, timeZoneName: "short" });
  return f.format(d);
}
function fmtClock(iso, tz) {
  if (!iso) return "–";
  return new Intl.DateTimeFormat("en-US", { timeZone: tz || "UTC", hour: "2-digit", minute: "2-digit",
    second: "2-digit", hour12: false, timeZoneName: "short" }).format(new Date(iso));
}
function hourLabel(ms, tz) {
  return new Intl.DateTimeFormat("en-US", { timeZone: tz || "UTC", hour: "2-digit", minute: "2-digit", hour12: false }).format(new Date(ms));
}

// ---- API access ----
function showError(msg) { const e = $("error"); if (!msg) { e.hidden = true; return; } e.textContent = msg; e.hidden = false; }
const WRITE_HEADERS = { "X-Requested-With": "bessfleet-dashboard" };
async function api(path) {
  const r = await fetch(path, { credentials: "same-origin" });
  if (r.status === 401) { signedOut("Your session ended or the key was refused (401): sign in again."); throw new Error("Signed out (401)."); }
  if (r.status === 403) throw new Error("This key's role may not read this (403).");
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

// ---- fleet list and map ----
function statusOf(site) {
  if (!site.state) return "unknown";
  return site.state.online === false ? "offline" : (site.state.online === true ? "online" : "unknown");
}
function renderSites() {
  const tbody = $("sites").querySelector("tbody");
  const rows = [];
  for (const s of state.sites.values()) {
    const st = statusOf(s);
    const tr = document.createElement("tr");
    tr.dataset.site = s.site_id;
    if (s.site_id === state.selected) tr.className = "sel";
    const cells = [
      [s.name || s.site_id, ""], [s.market.toUpperCase(), ""], [null, ""],
      [fmtPct(s.state && s.state.soc), "num"], [fmtMW(s.state && s.state.power_mw), "num"],
      [`${fmtNum(s.discharge_mw, 1)} MW / ${fmtNum(s.energy_mwh, 0)} MWh`, "num"],
      [fmtClock(s.state && s.state.ts, s.timezone), ""],
    ];
    cells.forEach(([text, cls], i) => {
      const td = document.createElement("td");
      if (cls) td.className = cls;
      if (i === 1) td.title = `pricing node ${s.node || "–"}`;
      if (i === 2) { const b = document.createElement("span"); b.className = `st st-${st}`; b.textContent = st; td.appendChild(b); }
      else td.textContent = text;
      tr.appendChild(td);
    });
    tr.addEventListener("click", () => selectSite(s.site_id));
    rows.push(tr);
  }
  tbody.replaceChildren(...rows);
  renderMap();
  renderSummary();
}
function renderMap() {
  const svg = $("map");
  const pts = [...state.sites.values()].filter((s) => s.latitude !== null && s.longitude !== null && s.latitude !== undefined);
  const parts = [`<rect x="0" y="0" width="400" height="220" fill="#eef3f8" rx="4"/>`];
  if (pts.length === 0) {
    parts.push(`<text x="200" y="110" text-anchor="middle">no site coordinates</text>`);
  } else {
    const lats = pts.map((s) => s.latitude), lons = pts.map((s) => s.longitude);
    const pad = 1.0;
    const la0 = Math.min(...lats) - pad, la1 = Math.max(...lats) + pad;
    const lo0 = Math.min(...lons) - pad, lo1 = Math.max(...lons) + pad;
    const sc = Math.min(290 / (lo1 - lo0), 190 / (la1 - la0));
    for (const s of pts) {
      const x = 10 + (s.longitude - lo0) * sc, y = 210 - (s.latitude - la0) * sc;
      const st = statusOf(s);
      const col = st === "online" ? "#2b9348" : (st === "offline" ? "#c0392b" : "#7a8594");
      const r = 4 + Math.sqrt(Math.max(s.energy_mwh || 1, 1)) / 2;
      const soc = s.state && s.state.soc !== null && s.state.soc !== undefined ? ` ${fmtNum(s.state.soc * 100, 0)} %` : "";
      parts.push(`<g class="site-dot" data-site="${esc(s.site_id)}"><circle cx="${x.toFixed(1)}" cy="${y.toFixed(1)}" r="${r.toFixed(1)}" fill="${col}" fill-opacity="0.75"/><text x="${(x + r + 2).toFixed(1)}" y="${(y + 3).toFixed(1)}">${esc(s.site_id)}${soc}</text></g>`);
    }
  }
  svg.innerHTML = parts.join("");
  svg.querySelectorAll(".site-dot").forEach((g) => g.addEventListener("click", () => selectSite(g.dataset.site)));
}
function esc(t) { return String(t).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }
function renderSummary() {
  const sites = [...state.sites.values()];
  const online = sites.filter((s) => statusOf(s) === "online").length;
  $("sum-online").textContent = `${online} / ${sites.length}`;
  let p = 0, e = 0, socs = [];
  for (const s of sites) {
    if (s.state && s.state.power_mw !== null && s.state.power_mw !== undefined) p += s.state.power_mw;
    if (s.state && s.state.soc !== null && s.state.soc !== undefined) { e += s.state.soc * s.energy_mwh; socs.push(s.state.soc); }
  }
  $("sum-power").textContent = fmtMW(p);
  $("sum-energy").textContent = fmtMWh(e);
  $("sum-soc").textContent = socs.length ? fmtPct(socs.reduce((a, b) => a + b, 0) / socs.length) : "–";
}

// ---- charts (hand-written SVG) ----
function lineChart(svg, w, h, series, yUnit, tz, yFixed, xRange) {
  const L = 52, R = 8, T = 8, B = 22;
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) { svg.innerHTML = `<text x="${w / 2}" y="${h / 2}" text-anchor="middle">no data</text>`; return; }
  const xs = all.map((p) => p[0]);
  let ys = all.map((p) => p[1]).filter((v) => v !== null);
  const x0 = xRange ? xRange[0] : Math.min(...xs), x1 = xRange ? xRange[1] : (Math.max(...xs) || x0 + 1);
  let y0 = yFixed ? yFixed[0] : Math.min(0, ...ys), y1 = yFixed ? yFixed[1] : Math.max(0, ...ys);
  if (y1 - y0 < 1e-9) { y0 -= 1; y1 += 1; }
  const X = (v) => L + (v - x0) / Math.max(x1 - x0, 1) * (w - L - R);
  const Y = (v) => T + (1 - (v - y0) / (y1 - y0)) * (h - T - B);
  const parts = [];
  for (let k = 0; k <= 4; k++) {
    const v = y0 + (y1 - y0) * k / 4;
    parts.push(`<line x1="${L}" x2="${w - R}" y1="${Y(v)}" y2="${Y(v)}" stroke="#e3e8ee"/>`);
    parts.push(`<text x="${L - 4}" y="${Y(v) + 3}" text-anchor="end">${fmtNum(v, Math.abs(y1 - y0) < 10 ? 1 : 0)} ${yUnit}</text>`);
  }
  for (let k = 0; k <= 6; k++) {
    const v = x0 + (x1 - x0) * k / 6;
    if (k === 6 && xRange) { parts.push(`<text x="${X(v) - 2}" y="${h - 6}" text-anchor="end">${hourLabel(v, tz)}</text>`); continue; }
    parts.push(`<text x="${X(v)}" y="${h - 6}" text-anchor="middle">${hourLabel(v, tz)}</text>`);
  }
  if (y0 < 0 && y1 > 0) parts.push(`<line x1="${L}" x2="${w - R}" y1="${Y(0)}" y2="${Y(0)}" stroke="#9aa5b1"/>`);
  for (const s of series) {
    if (!s.points.length) continue;
    let d = "";
    let pen = false;
    for (const [x, y] of s.points) {
      if (y === null) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`;
      pen = true;
    }
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.6"${s.step ? "" : ""}/>`);
  }
  svg.innerHTML = parts.join("");
}
function stepPoints(points, intervalMs, key) {
  const out = [];
  for (const p of points) { const t = Date.parse(p.ts); out.push([t, p[key]]); out.push([t + intervalMs, p[key]]); }
  return out;
}
async function loadDetail() {
  const id = state.selected;
  if (!id) return;
  const site = state.sites.get(id);
  const tz = site ? site.timezone : "UTC";
  $("detail-site").textContent = `${site ? (site.name || id) : id} (${tz})`;
  try {
    const d = await api(`/v1/sites/${encodeURIComponent(id)}/schedule-vs-realized`);
    const plan = d.schedule ? d.schedule.points : [];
    const ivMs = d.schedule ? d.schedule.interval_minutes * 60000 : 900000;
    const realized = d.realized || [];
    const xr = [Date.parse(d.start), Date.parse(d.end)];
    lineChart($("chart-power"), 640, 200, [
      { color: "var(--plan)", points: stepPoints(plan, ivMs, "power_mw") },
      { color: "var(--real)", points: realized.map((p) => [Date.parse(p.ts), p.power_mw]) },
    ], "MW", tz, null, xr);
    lineChart($("chart-soc"), 640, 160, [
      { color: "var(--soc)", points: plan.filter((p) => p.soc !== null).map((p) => [Date.parse(p.ts) + ivMs, p.soc * 100]) },
      { color: "var(--socr)", points: realized.filter((p) => p.soc !== null).map((p) => [Date.parse(p.ts), p.soc * 100]) },
    ], "%", tz, [0, 100], xr);
    $("detail-note").textContent = d.schedule
      ? `Schedule version ${d.schedule.version} (${d.schedule.status}), created ${fmtTime(d.schedule.created_at, tz)}; times in ${tz}. Power: + discharge, − charge.`
      : `No schedule covers this window; realized telemetry only. Times in ${tz}.`;
  } catch (err) { showError(err.message); }
}
function selectSite(id) { state.selected = id; renderSites(); loadDetail(); }

async function loadRevenue() {
  const end = new Date(), start = new Date(end.getTime() - 7 * 86400000);
  const d = await api(`/v1/revenue?start=${start.toISOString()}&end=${end.toISOString()}`);
  $("sum-revenue").textContent = fmtUSD(d.total_usd);
  const entries = Object.entries(d.by_service_usd || {});
  const svg = $("chart-revenue");
  if (!entries.length) { svg.innerHTML = `<text x="200" y="100" text-anchor="middle">no schedules in the last 7 days</text>`; return; }
  const maxAbs = Math.max(1, ...entries.map(([, v]) => Math.abs(v)));
  const rowH = Math.min(28, 190 / entries.length);
  const mid = 200;
  const parts = [`<line x1="${mid}" x2="${mid}" y1="0" y2="200" stroke="#9aa5b1"/>`];
  entries.forEach(([k, v], i) => {
    const wBar = Math.abs(v) / maxAbs * 110, y = 6 + i * rowH;
    const x = v >= 0 ? mid : mid - wBar;
    parts.push(`<text x="4" y="${y + rowH / 2 + 3}">${esc(k)}</text>`);
    parts.push(`<rect x="${x}" y="${y}" width="${wBar}" height="${rowH - 6}" fill="${v >= 0 ? "#2f6fdb" : "#c0392b"}"/>`);
    parts.push(`<text x="${v >= 0 ? mid + wBar + 4 : mid + 4}" y="${y + rowH / 2 + 3}">${fmtUSD(v)}</text>`);
  });
  svg.innerHTML = parts.join("");
}
async function loadAwards() {
  const d = await api("/v1/awards?limit=20");
  const tz = (m) => ({ ercot: "America/Chicago", caiso: "America/Los_Angeles", pjm: "America/New_York" }[String(m).toLowerCase()] || "UTC");
  const rows = d.items.map((a) => {
    const tr = document.createElement("tr");
    [a.market.toUpperCase(), a.operating_day, String(a.version), fmtTime(a.created_at, tz(a.market)), String(a.interval_count)]
      .forEach((t, i) => { const td = document.createElement("td"); td.textContent = t; if (i === 4) td.className = "num"; tr.appendChild(td); });
    return tr;
  });
  if (!rows.length) { const tr = document.createElement("tr"); const td = document.createElement("td"); td.colSpan = 5; td.textContent = "no awards yet"; tr.appendChild(td); rows.push(tr); }
  $("awards").querySelector("tbody").replaceChildren(...rows);
}
// ---- open alerts (asset health) with acknowledge ----
function alertsMsg(msg, ok) {
  const e = $("alerts-msg");
  if (!msg) { e.hidden = true; return; }
  e.textContent = msg; e.className = ok ? "panel-msg ok" : "panel-msg"; e.hidden = false;
}
function renderAlerts() {
  const count = $("alerts-count");
  count.textContent = String(state.alertCount);
  count.className = state.alertCount ? "count has" : "count";
  const rows = state.alerts.map((a) => {
    const tr = document.createElement("tr");
    tr.dataset.alert = String(a.alert_id);
    if (a.acknowledged_by) tr.className = "acked";
    const site = a.site_id ? state.sites.get(a.site_id) : null;
    const sev = document.createElement("span"); sev.className = `sev sev-${a.severity}`; sev.textContent = a.severity;
    const cells = [sev, site ? (site.name || a.site_id) : (a.site_id || "–"), a.dev_id === "*" ? "site-wide" : a.dev_id,
      a.kind.replace(/_/g, " "), fmtTime(a.opened_at, a.timezone), a.action || "–"];
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      if (i === 5) td.className = "action";
      if (i === 1 && a.site_id) td.title = a.site_id;
      if (typeof c === "string") td.textContent = c; else td.appendChild(c);
      tr.appendChild(td);
    });
    const td = document.createElement("td");
    if (a.acknowledged_by) {
      td.textContent = `by ${a.acknowledged_by}`;
      if (a.acknowledged_at) td.title = fmtTime(a.acknowledged_at, a.timezone);
    } else {
      const b = document.createElement("button"); b.type = "button"; b.className = "ack"; b.textContent = "Acknowledge";
      b.addEventListener("click", () => ackAlert(a.alert_id, b));
      td.appendChild(b);
    }
    tr.appendChild(td);
    return tr;
  });
  if (!rows.length) { const tr = document.createElement("tr"); const td = document.createElement("td"); td.colSpan = 7; td.textContent = "no open alerts"; tr.appendChild(td); rows.push(tr); }
  $("alerts").querySelector("tbody").replaceChildren(...rows);
  document.body.dataset.alerts = String(state.alerts.length);
}
async function loadAlerts() {
  const d = await api("/v1/alerts?open_only=true&limit=200");
  state.alerts = d.items; state.alertCount = d.count;
  renderAlerts();
}
async function ackAlert(id, button) {
  button.disabled = true;
  alertsMsg(null);
  try {
    const r = await fetch(`/v1/alerts/${id}/ack`, { method: "POST", credentials: "same-origin", headers: WRITE_HEADERS });
    if (r.status === 403) {
      alertsMsg("Not acknowledged (403 Forbidden): acknowledging an alert needs a scheduler or admin key, and this is a viewer key. Sign in with a scheduler key above.");
      button.disabled = false; return;
    }
    if (r.status === 401) { alertsMsg("Not acknowledged (401): the API key was refused."); button.disabled = false; return; }
    if (r.status === 404) { alertsMsg(`Alert ${id} no longer exists (404).`); loadAlerts().catch(() => {}); return; }
    if (!r.ok) { alertsMsg(`Not acknowledged: HTTP ${r.status}.`); button.disabled = false; return; }
    const a = await r.json();
    state.alerts = state.alerts.map((x) => x.alert_id === a.alert_id ? a : x);
    renderAlerts();
    alertsMsg(`Alert ${id} (${a.kind.replace(/_/g, " ")}) acknowledged by ${a.acknowledged_by}.`, true);
  } catch (err) { alertsMsg(`Not acknowledged: ${err.message}`); button.disabled = false; }
}
async function loadSites() {
  const d = await api("/v1/sites");
  state.sites = new Map(d.items.map((s) => [s.site_id, s]));
  if (!state.selected && d.items.length) state.selected = d.items[0].site_id;
  renderSites();
}

// ---- live stream (SSE over fetch so the key travels in a header, not the URL) ----
function setConn(on, text) { const c = $("conn"); c.className = `pill ${on ? "pill-on" : "pill-off"}`; c.textContent = `stream: ${text}`; state.stream = text; }
function logEvent(kind, data) {
  const li = document.createElement("li");
  const site = data.site_id ? state.sites.get(data.site_id) : null;
  const tz = site ? site.timezone : "UTC";
  const when = fmtTime(data.ts || new Date().toISOString(), tz);
  const k = document.createElement("span"); k.className = "k"; k.textContent = kind;
  li.appendChild(k);
  li.appendChild(document.createTextNode(` ${when} ${data.site_id || data.market || ""} ${data.summary || ""}`));
  const ol = $("events"); ol.prepend(li);
  while (ol.children.length > 100) ol.lastChild.remove();
  state.events += 1;
  document.body.dataset.events = String(state.events);
}
function handleEvent(kind, data) {
  logEvent(kind, data);
  if (kind === "state" && data.site_id && state.sites.has(data.site_id)) {
    const s = state.sites.get(data.site_id);
    s.state = Object.assign({}, s.state || {}, data.state);
    renderSites();
  } else if (kind === "schedule" && (!data.site_ids || data.site_ids.includes(state.selected))) {
    loadDetail(); loadRevenue().catch(() => {});
  } else if (kind === "awards") {
    loadAwards().catch(() => {});
  } else if (kind === "fleet") {
    loadSites().catch(() => {});
  } else if (kind === "alarm" || kind === "alert") {
    loadAlerts().catch(() => {});
  }
}
async function runStream() {
  if (state.streamAbort) state.streamAbort.abort();
  const ctl = new AbortController(); state.streamAbort = ctl;
  let lastId = null;
  for (;;) {
    try {
      const headers = { "Accept": "text/event-stream" };
      if (lastId) headers["Last-Event-ID"] = lastId;
      const r = await fetch("/v1/stream", { headers, credentials: "same-origin", signal: ctl.signal });
      if (r.status === 401) { signedOut("Your session ended or the key was revoked (401): sign in again."); return; }
      if (!r.ok) throw new Error(`stream HTTP ${r.status}`);
      setConn(true, "live");
      const reader = r.body.getReader(); const dec = new TextDecoder(); let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let idx;
        while ((idx = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, idx); buf = buf.slice(idx + 2);
          let kind = "message", data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) kind = line.slice(7);
            else if (line.startsWith("data: ")) data += line.slice(6);
            else if (line.startsWith("id: ")) lastId = line.slice(4);
          }
          if (kind === "revoked") { signedOut("The key of this session was revoked or expired: sign in again."); return; }
          if (data && kind !== "ping") { try { handleEvent(kind, JSON.parse(data)); } catch (e) { /* ignore a bad frame */ } }
        }
      }
    } catch (err) {
      if (ctl.signal.aborted) return;
    }
    setConn(false, "reconnecting");
    await new Promise((res) => setTimeout(res, 2000));
  }
}

async function start() {
  showError(null); alertsMsg(null);
  try {
    await loadSites();
    document.body.dataset.loaded = "true";
    await Promise.allSettled([loadDetail(), loadRevenue(), loadAwards(), loadAlerts()]);
    runStream();
  } catch (err) { showError(err.message); }
}
// ---- sign-in: the key is exchanged for an HttpOnly session cookie, never stored here ----
function showSession() {
  const who = $("who");
  if (!state.session) { who.textContent = "not signed in"; $("signout").hidden = true; $("keyform").hidden = false; return; }
  const s = state.session;
  const until = s.expires_at ? ` until ${fmtTime(s.expires_at, viewTz())}` : "";
  who.textContent = `signed in: ${s.key_id} (${s.role})${until}`;
  $("signout").hidden = false;
}
function signedOut(msg) {
  state.session = null;
  if (state.streamAbort) { state.streamAbort.abort(); state.streamAbort = null; }
  setConn(false, "offline");
  showSession();
  showError(msg);
}
async function signIn(key) {
  const r = await fetch("/v1/session", { method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ key }) });
  if (!r.ok) { signedOut(r.status === 401 ? "The API key was refused (401): enter a valid key." : `Sign-in failed: HTTP ${r.status}`); return; }
  state.session = await r.json();
  showSession();
  start();
}
async function signOut() {
  await fetch("/v1/session", { method: "DELETE", credentials: "same-origin", headers: WRITE_HEADERS }).catch(() => {});
  signedOut("Signed out.");
}
async function init() {
  localStorage.removeItem("bessfleet.key"); // older dashboards kept the key here
  const params = new URLSearchParams(location.search);
  if (params.has("signin")) history.replaceState(null, "", location.pathname);
  $("keyform").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const k = $("apikey").value.trim();
    $("apikey").value = "";
    if (k) signIn(k);
  });
  $("signout").addEventListener("click", () => signOut());
  const r = await fetch("/v1/session", { credentials: "same-origin" }).catch(() => null);
  if (r && r.ok) { state.session = await r.json(); showSession(); start(); }
  else {
    showSession();
    showError(params.get("signin") === "url-key"
      ? "Keys are not accepted in links (they end up in logs and browser history): paste the key below to sign in."
      : "Sign in with an API key (create one with `bessfleet keys create --role viewer`).");
  }
  setInterval(() => { if (state.session && state.stream !== "live") loadSites().catch(() => {}); }, 30000);
  // severity escalations and closed conditions raise no stream event: refresh the list
  setInterval(() => { if (state.session) loadAlerts().catch(() => {}); }, 60000);
}
init();
