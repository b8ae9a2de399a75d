// bessfleet operator dashboard: plain JS, no build step, no network beyond this app.
// One view = one market and one operating day; every time in it is in the market's zone.
"use strict";

const state = {
  session: null, sites: new Map(), fleet: null, market: null, day: null, tz: null,
  selected: null, streamAbort: null, stream: "offline", events: 0, alerts: [], alertCount: 0,
  shapes: null, staleAfterS: 300,
};
const $ = (id) => document.getElementById(id);
const viewTz = () => state.tz || "UTC";
const WRITE_HEADERS = { "X-Requested-With": "bessfleet-dashboard" };

// ---- formatting: numbers carry units; times carry a date and the zone ----
const fmtNum = (v, digits) => {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const r = Number(Number(v).toFixed(digits));
  return (r === 0 ? 0 : r).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
};
const fmtMW = (v) => v === null || v === undefined ? "–" : `${fmtNum(v, 2)} MW`;
const fmtMWh = (v) => v === null || v === undefined ? "–" : `${fmtNum(v, 1)} MWh`;
const fmtPct = (frac) => frac === null || frac === undefined ? "–" : `${fmtNum(frac * 100, 1)} %`;
const fmtUSD = (v) => v === null || v === undefined ? "–" : `${v < 0 ? "−" : ""}$${fmtNum(Math.abs(v), 0)}`;
function fmtTime(iso, tz) {
  if (!iso) return "–";
  return new Intl.DateTimeFormat("en-US", { timeZone: tz || "UTC", year: "numeric", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false, timeZoneName: "short" }).format(new Date(iso));
}
function fmtShort(iso, tz) {
  if (!iso) return "–";
  return new Intl.DateTimeFormat("en-US", { timeZone: tz || "UTC", month: "short", day: "numeric",
    hour: "2-digit", minute: "2-digit", hour12: false, timeZoneName: "short" }).format(new Date(iso));
}
function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86400)} days ago`;
}
function hourLabel(ms, tz) {
  return new Intl.DateTimeFormat("en-US", { timeZone: tz || "UTC", hour: "2-digit", minute: "2-digit", hour12: false }).format(new Date(ms));
}
function zoneAbbr(tz, ms) {
  const part = new Intl.DateTimeFormat("en-US", { timeZone: tz, timeZoneName: "short" }).formatToParts(new Date(ms))
    .find((p) => p.type === "timeZoneName");
  return part ? part.value : tz;
}
// offset of `tz` from UTC at instant `ms` [ms]
function tzOffsetMs(ms, tz) {
  const p = Object.fromEntries(new Intl.DateTimeFormat("en-US", { timeZone: tz, hourCycle: "h23", year: "numeric",
    month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" })
    .formatToParts(new Date(ms)).map((x) => [x.type, x.value]));
  return Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) - Math.floor(ms / 1000) * 1000;
}
// UTC instant [ms] of local midnight starting `day` (YYYY-MM-DD) in `tz` (DST-safe)
function localMidnight(day, tz) {
  const [y, m, d] = day.split("-").map(Number);
  const guess = Date.UTC(y, m - 1, d);
  let t = guess - tzOffsetMs(guess, tz);
  t = guess - tzOffsetMs(t, tz);
  return t;
}
function nextDay(day) {
  const [y, m, d] = day.split("-").map(Number);
  return new Date(Date.UTC(y, m - 1, d + 1)).toISOString().slice(0, 10);
}
function todayIn(tz) {
  const p = Object.fromEntries(new Intl.DateTimeFormat("en-US", { timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit" })
    .formatToParts(new Date()).map((x) => [x.type, x.value]));
  return `${p.year}-${p.month}-${p.day}`;
}
function esc(t) { return String(t).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c])); }

// ---- API access: the session cookie authenticates; no key is kept in the page ----
function showError(msg) { const e = $("error"); if (!msg) { e.hidden = true; return; } e.textContent = msg; e.hidden = false; }
async function api(path, { allow404 = false } = {}) {
  const r = await fetch(path, { credentials: "same-origin" });
  if (r.status === 401) { signedOut("Your session ended or the key was refused (401): sign in again."); throw new Error("Signed out (401)."); }
  if (r.status === 403) throw new Error("This key's role may not read this (403).");
  if (r.status === 404 && allow404) return null;
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

// ---- site status: totals and colours only from fresh telemetry ----
function siteAgeS(site) {
  const ts = site.state && site.state.ts;
  return ts ? Math.max(0, (Date.now() - Date.parse(ts)) / 1000) : null;
}
function statusOf(site) {
  if (!site.state || !site.state.ts) return "nodata";
  if (site.state.online === false) return "offline";
  if (siteAgeS(site) > state.staleAfterS) return "stale";
  return site.state.online === true ? "online" : "stale";
}
const STATUS_TEXT = { online: "online", offline: "offline", stale: "stale", nodata: "no data" };
const STATUS_COLOR = { online: "#2b9348", offline: "#c0392b", stale: "#d68910", nodata: "#7a8594" };
const marketSites = () => [...state.sites.values()].filter((s) => s.market.toUpperCase() === state.market);

function renderSites() {
  $("fleet-market").textContent = `${state.market || "–"}, times in ${viewTz()}`;
  const rows = marketSites().map((s) => {
    const st = statusOf(s);
    const tr = document.createElement("tr");
    tr.dataset.site = s.site_id;
    tr.dataset.status = st;
    tr.className = [s.site_id === state.selected ? "sel" : "", st === "online" ? "" : "stale"].join(" ").trim();
    const age = siteAgeS(s);
    const cells = [
      [s.name || s.site_id, ""], [null, ""],
      [fmtPct(s.state && s.state.soc), "num val"], [fmtMW(s.state && s.state.power_mw), "num val"],
      [`${fmtNum(s.discharge_mw, 0)} MW / ${fmtNum(s.energy_mwh, 0)} MWh`, "num"],
      [s.state && s.state.ts ? `${fmtShort(s.state.ts, viewTz())}, ${fmtAge(age)}` : "never", "age"],
    ];
    cells.forEach(([text, cls], i) => {
      const td = document.createElement("td");
      if (cls) td.className = cls;
      if (i === 0) td.title = `${s.site_id}, pricing node ${s.node || "–"}`;
      if (i === 1) { const b = document.createElement("span"); b.className = `st st-${st}`; b.textContent = STATUS_TEXT[st]; td.appendChild(b); }
      else td.textContent = text;
      tr.appendChild(td);
    });
    tr.addEventListener("click", () => selectSite(s.site_id));
    return tr;
  });
  if (!rows.length) { const tr = document.createElement("tr"); const td = document.createElement("td"); td.colSpan = 6; td.textContent = "no sites in this market"; tr.appendChild(td); rows.push(tr); }
  $("sites").querySelector("tbody").replaceChildren(...rows);
  renderMap();
}
function renderSummary() {
  const f = state.fleet;
  if (!f) return;
  const reporting = f.fresh_count;
  $("sum-fresh").textContent = `${reporting} of ${f.site_count}`;
  const parts = [];
  if (f.stale_count) parts.push(`${f.stale_count} stale or offline`);
  if (f.missing_count) parts.push(`${f.missing_count} no data`);
  $("sum-fresh-note").textContent = parts.length ? parts.join(", ") : `all current (≤ ${Math.round(f.stale_after_s / 60)} min old)`;
  const from = reporting ? `from ${reporting} reporting site${reporting === 1 ? "" : "s"}` : "no site reporting";
  $("sum-power").textContent = fmtMW(f.power_mw);
  $("sum-power-note").textContent = from;
  $("sum-energy").textContent = fmtMWh(f.stored_energy_mwh);
  $("sum-energy-note").textContent = `${from}; rated ${fmtNum(f.energy_mwh, 0)} MWh`;
  $("sum-soc").textContent = fmtPct(f.mean_soc);
  $("sum-soc-note").textContent = from;
  document.body.dataset.fresh = String(reporting);
}
async function loadFleet() {
  const f = await api(`/v1/fleet?market=${encodeURIComponent(state.market)}`);
  state.fleet = f; state.staleAfterS = f.stale_after_s;
  renderSummary();
}

// ---- map: TX and CA outlines (bundled shape file), collision-free labels ----
const INSETS = { TX: { x: 0, y: 0, w: 390, h: 330 }, CA: { x: 400, y: 0, w: 240, h: 330 } };
const MARKET_STATE = { ERCOT: "TX", CAISO: "CA" };
function insetProjection(feature, box) {
  const pts = feature.geometry.coordinates.flat(2);
  const lons = pts.map((p) => p[0]), lats = pts.map((p) => p[1]);
  const lo0 = Math.min(...lons), lo1 = Math.max(...lons), la0 = Math.min(...lats), la1 = Math.max(...lats);
  const k = Math.cos(((la0 + la1) / 2) * Math.PI / 180);
  const pad = 14;
  const sc = Math.min((box.w - 2 * pad) / ((lo1 - lo0) * k), (box.h - 2 * pad) / (la1 - la0));
  const ox = box.x + (box.w - (lo1 - lo0) * k * sc) / 2, oy = box.y + (box.h - (la1 - la0) * sc) / 2;
  return (lon, lat) => [ox + (lon - lo0) * k * sc, oy + (la1 - lat) * sc];
}
function pathOf(feature, proj) {
  return feature.geometry.coordinates.map((poly) => poly.map((ring) =>
    ring.map(([lon, lat], i) => { const [x, y] = proj(lon, lat); return `${i ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`; }).join("") + "Z").join("")).join("");
}
const overlaps = (a, b) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
function placeLabels(svg, placed) {
  // greedy: try positions around the dot at growing distances; take the first free one
  const taken = [...placed.fixed];
  const NS = "http://www.w3.org/2000/svg";
  const bounds = { x: 0, y: 0, w: 640, h: 330 };
  for (const p of placed.sites) {
    const text = document.createElementNS(NS, "text");
    text.setAttribute("class", "site-label");
    text.textContent = p.label;
    p.group.appendChild(text);
    let best = null;
    outer:
    for (const r of [9, 16, 26, 38, 52, 68, 86]) {
      for (const deg of [0, 180, 30, -30, 150, -150, 60, -60, 120, -120, 90, -90]) {
        const a = deg * Math.PI / 180;
        const ax = p.x + r * Math.cos(a), ay = p.y - r * Math.sin(a);
        const anchor = Math.cos(a) > 0.3 ? "start" : (Math.cos(a) < -0.3 ? "end" : "middle");
        text.setAttribute("text-anchor", anchor);
        text.setAttribute("x", ax.toFixed(1)); text.setAttribute("y", (ay + 3.5).toFixed(1));
        const bb = text.getBBox();
        const box = { x: bb.x - 1, y: bb.y - 1, w: bb.width + 2, h: bb.height + 2 };
        if (box.x < bounds.x || box.y < bounds.y || box.x + box.w > bounds.w || box.y + box.h > bounds.h) continue;
        if (taken.some((t) => overlaps(t, box))) continue;
        best = { box, r, ax, ay };
        break outer;
      }
    }
    if (!best) { text.remove(); p.group.dataset.unlabelled = "true"; continue; }
    taken.push(best.box);
    if (best.r > 9) {
      const line = document.createElementNS(NS, "line");
      line.setAttribute("class", "leader");
      line.setAttribute("x1", p.x); line.setAttribute("y1", p.y);
      line.setAttribute("x2", best.ax.toFixed(1)); line.setAttribute("y2", best.ay.toFixed(1));
      p.group.insertBefore(line, p.group.firstChild);
    }
  }
}
function renderMap() {
  const svg = $("map");
  if (!state.shapes) { svg.innerHTML = `<text x="320" y="165" text-anchor="middle">loading map…</text>`; return; }
  const parts = [];
  const projections = {};
  const fixed = [];
  for (const feature of state.shapes.features) {
    const key = feature.properties.postal, box = INSETS[key];
    if (!box) continue;
    projections[key] = insetProjection(feature, box);
    parts.push(`<path class="state" d="${pathOf(feature, projections[key])}"><title>${esc(feature.properties.name)}</title></path>`);
    parts.push(`<text class="state-name" x="${box.x + 8}" y="${box.y + 18}">${esc(feature.properties.name)}</text>`);
    fixed.push({ x: box.x + 6, y: box.y + 4, w: feature.properties.name.length * 8.5, h: 18 });
  }
  svg.innerHTML = parts.join("");
  const NS = "http://www.w3.org/2000/svg";
  const placed = [];
  const sites = [...state.sites.values()].filter((s) => s.latitude !== null && s.longitude !== null && s.latitude !== undefined);
  // labels of the viewed market first, so they get the closest spots
  sites.sort((a, b) => (b.market.toUpperCase() === state.market) - (a.market.toUpperCase() === state.market) || b.latitude - a.latitude);
  for (const s of sites) {
    const proj = projections[MARKET_STATE[s.market.toUpperCase()]];
    if (!proj) continue;
    const [x, y] = proj(s.longitude, s.latitude);
    const st = statusOf(s);
    const g = document.createElementNS(NS, "g");
    g.setAttribute("class", `site-dot${s.market.toUpperCase() === state.market ? "" : " other"}${s.site_id === state.selected ? " sel" : ""}`);
    g.dataset.site = s.site_id;
    const c = document.createElementNS(NS, "circle");
    c.setAttribute("cx", x.toFixed(1)); c.setAttribute("cy", y.toFixed(1)); c.setAttribute("r", "5");
    c.setAttribute("fill", STATUS_COLOR[st]);
    const title = document.createElementNS(NS, "title");
    title.textContent = `${s.name} (${s.site_id}): ${STATUS_TEXT[st]}`;
    c.appendChild(title);
    g.appendChild(c);
    svg.appendChild(g);
    fixed.push({ x: x - 6, y: y - 6, w: 12, h: 12 });
    const soc = s.state && s.state.soc !== null && s.state.soc !== undefined && st === "online" ? ` ${fmtNum(s.state.soc * 100, 0)} %` : "";
    placed.push({ group: g, x, y, label: `${s.site_id}${soc}` });
    g.addEventListener("click", () => selectSite(s.site_id));
  }
  placeLabels(svg, { fixed, sites: placed });
  svg.dataset.labels = String(svg.querySelectorAll(".site-label").length);
}

// ---- charts (hand-written SVG) ----
function lineChart(svg, w, h, series, yUnit, tz, yFixed, xRange, emptyText) {
  const L = 56, R = 8, T = 8, B = 22;
  const all = series.flatMap((s) => s.points).filter((p) => p[1] !== null && p[1] !== undefined);
  if (all.length === 0) { svg.innerHTML = `<text class="empty" x="${w / 2}" y="${h / 2}" text-anchor="middle">${esc(emptyText)}</text>`; return; }
  const ys = all.map((p) => p[1]);
  const x0 = xRange[0], x1 = xRange[1];
  let y0 = yFixed ? yFixed[0] : Math.min(0, ...ys), y1 = yFixed ? yFixed[1] : Math.max(0, ...ys);
  if (y1 - y0 < 1e-6) { y0 -= 1; y1 += 1; }
  const X = (v) => L + (v - x0) / Math.max(x1 - x0, 1) * (w - L - R);
  const Y = (v) => T + (1 - (v - y0) / (y1 - y0)) * (h - T - B);
  const digits = Math.abs(y1 - y0) < 10 ? 1 : 0;
  const parts = [];
  for (let k = 0; k <= 4; k++) {
    const v = y0 + (y1 - y0) * k / 4;
    parts.push(`<line x1="${L}" x2="${w - R}" y1="${Y(v)}" y2="${Y(v)}" stroke="#e3e8ee"/>`);
    parts.push(`<text x="${L - 4}" y="${Y(v) + 3}" text-anchor="end">${fmtNum(v, digits)} ${yUnit}</text>`);
  }
  for (let k = 0; k <= 6; k++) {
    const v = x0 + (x1 - x0) * k / 6;
    const anchor = k === 0 ? "start" : (k === 6 ? "end" : "middle");
    parts.push(`<text x="${X(v)}" y="${h - 6}" text-anchor="${anchor}">${hourLabel(v, tz)}</text>`);
  }
  if (y0 < 0 && y1 > 0) parts.push(`<line x1="${L}" x2="${w - R}" y1="${Y(0)}" y2="${Y(0)}" stroke="#9aa5b1"/>`);
  for (const s of series) {
    let d = "", pen = false;
    for (const [x, y] of s.points) {
      if (y === null || y === undefined) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`;
      pen = true;
    }
    if (d) parts.push(`<path class="${s.cls}" d="${d}" fill="none" stroke="${s.color}" stroke-width="1.6"/>`);
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
  const site = id ? state.sites.get(id) : null;
  if (!site) { $("detail-site").textContent = "(select a site)"; return; }
  const tz = viewTz();
  const start = localMidnight(state.day, tz), end = localMidnight(nextDay(state.day), tz);
  $("detail-site").textContent = `${site.name || id}, ${state.day}`;
  const q = `start=${new Date(start).toISOString()}&end=${new Date(end).toISOString()}`;
  const d = await api(`/v1/sites/${encodeURIComponent(id)}/schedule-vs-realized?${q}`);
  const plan = d.schedule ? d.schedule.points : [];
  const ivMs = d.schedule ? d.schedule.interval_minutes * 60000 : 900000;
  const realized = d.realized || [];
  const xr = [start, end];
  const empty = `no schedule and no telemetry for ${state.day}`;
  lineChart($("chart-power"), 640, 200, [
    { cls: "plan", color: "var(--plan)", points: stepPoints(plan, ivMs, "power_mw") },
    { cls: "real", color: "var(--real)", points: realized.map((p) => [Date.parse(p.ts), p.power_mw]) },
  ], "MW", tz, null, xr, empty);
  lineChart($("chart-soc"), 640, 160, [
    { cls: "plan", color: "var(--soc)", points: plan.filter((p) => p.soc !== null).map((p) => [Date.parse(p.ts) + ivMs, p.soc * 100]) },
    { cls: "real", color: "var(--socr)", points: realized.filter((p) => p.soc !== null).map((p) => [Date.parse(p.ts), p.soc * 100]) },
  ], "%", tz, [0, 100], xr, empty);
  const svg = $("chart-power");
  svg.dataset.day = state.day;
  svg.dataset.planPoints = String(plan.length);
  svg.dataset.realPoints = String(realized.length);
  $("detail-note").textContent = d.schedule
    ? `Schedule version ${d.schedule.version} (${d.schedule.status}), created ${fmtTime(d.schedule.created_at, tz)}. Hours in ${tz}. Power: + discharge, − charge.`
    : `No schedule covers ${state.day}; realized telemetry only. Hours in ${tz}.`;
}
function selectSite(id) {
  const site = state.sites.get(id);
  if (site && site.market.toUpperCase() !== state.market) { setMarket(site.market.toUpperCase(), id); return; }
  state.selected = id; renderSites(); loadDetail().catch((e) => showError(e.message));
}

function revenueBars(svg, entries) {
  const maxAbs = Math.max(1, ...entries.map(([, v]) => Math.abs(v)));
  const rowH = Math.min(28, 190 / entries.length);
  const mid = 200;
  const parts = [`<line x1="${mid}" x2="${mid}" y1="0" y2="200" stroke="#9aa5b1"/>`];
  entries.forEach(([k, v], i) => {
    const wBar = Math.abs(v) / maxAbs * 110, y = 6 + i * rowH;
    const x = v >= 0 ? mid : mid - wBar;
    parts.push(`<text x="4" y="${y + rowH / 2 + 3}">${esc(k.replace(/_/g, " "))}</text>`);
    parts.push(`<rect x="${x}" y="${y}" width="${wBar}" height="${rowH - 6}" fill="${v >= 0 ? "#2f6fdb" : "#c0392b"}"/>`);
    parts.push(`<text x="${v >= 0 ? mid + wBar + 4 : mid + 4}" y="${y + rowH / 2 + 3}">${fmtUSD(v)}</text>`);
  });
  svg.innerHTML = parts.join("");
}
async function loadRevenue() {
  $("revenue-day").textContent = state.day;
  const svg = $("chart-revenue");
  const only = state.selected ? `?site_id=${encodeURIComponent(state.selected)}` : "";
  const [plan, settled] = await Promise.all([
    api(`/v1/markets/${state.market}/schedules/${state.day}${only}`, { allow404: true }),
    api(`/v1/markets/${state.market}/settlement/${state.day}`),
  ]);
  const planEntries = plan ? Object.entries(plan.revenue_usd || {}) : [];
  const planTotal = planEntries.reduce((a, [, v]) => a + v, 0);
  const planText = plan ? `the objective of ${state.market} plan v${plan.version} (${plan.status}) was ${fmtUSD(planTotal)}` : "no plan is stored for this day";
  if (settled.total_usd !== null) {
    $("sum-revenue-label").textContent = "Settled revenue (day)";
    $("sum-revenue").textContent = fmtUSD(settled.total_usd);
    $("sum-revenue-note").textContent = `settled, ${settled.sites} site${settled.sites === 1 ? "" : "s"}`;
    $("revenue-kind").textContent = "Settled revenue";
    $("revenue-note").textContent = `Settled for ${state.day} at ${fmtTime(settled.settled_at, viewTz())}, by item; for comparison ${planText}.`;
    revenueBars(svg, Object.entries(settled.by_item_usd));
    document.body.dataset.revenue = "settled";
    return;
  }
  $("sum-revenue-label").textContent = "Planned revenue (day)";
  $("revenue-kind").textContent = "Planned revenue";
  document.body.dataset.revenue = "planned";
  const why = settled.available ? `${state.day} is not settled yet` : "settled revenue is not recorded in this store";
  if (!plan) {
    $("sum-revenue").textContent = "–"; $("sum-revenue-note").textContent = `no plan for ${state.day}`;
    $("revenue-note").textContent = `No schedule is stored for ${state.market} on ${state.day}; ${why}.`;
    svg.innerHTML = `<text class="empty" x="200" y="100" text-anchor="middle">no plan for ${esc(state.day)}</text>`; return;
  }
  $("sum-revenue").textContent = planEntries.length ? fmtUSD(planTotal) : "–";
  $("sum-revenue-note").textContent = `planned (plan v${plan.version} objective), not settled`;
  $("revenue-note").textContent = `Planned: the objective of ${state.market} plan v${plan.version} (${plan.status}) for ${state.day}, by service; degradation is a cost. Not settled: ${why}.`;
  if (!planEntries.length) { svg.innerHTML = `<text class="empty" x="200" y="100" text-anchor="middle">the plan records no revenue by service</text>`; return; }
  revenueBars(svg, planEntries);
}
async function loadReserve() {
  $("reserve-day").textContent = state.day;
  const d = await api(`/v1/markets/${state.market}/reserve-coverage/${state.day}`);
  const rows = d.items.map((it) => {
    const tr = document.createElement("tr");
    tr.dataset.site = it.site_id; tr.dataset.product = it.product;
    const site = state.sites.get(it.site_id);
    [[site ? site.name : it.site_id, ""], [it.product.replace(/_/g, " "), ""], [fmtMWh(it.awarded_mwh), "num"],
      [fmtMWh(it.held_mwh), "num"], [fmtMWh(it.shortfall_mwh), it.shortfall_mwh > 1e-6 ? "num short" : "num"],
      [`${it.short_intervals} of ${it.intervals}`, "num"]]
      .forEach(([t, cls]) => { const td = document.createElement("td"); td.textContent = t; if (cls) td.className = cls; tr.appendChild(td); });
    return tr;
  });
  if (!rows.length) { const tr = document.createElement("tr"); const td = document.createElement("td"); td.colSpan = 6; td.textContent = `no ancillary-service awards for ${state.day}`; tr.appendChild(td); rows.push(tr); }
  $("reserve").querySelector("tbody").replaceChildren(...rows);
  $("reserve-note").textContent = d.award_version === null ? "" :
    `Awards v${d.award_version} against ${d.schedule_version === null ? "no plan (nothing held)" : `plan v${d.schedule_version}`}; MW·h over the day.`;
}
async function loadAwards() {
  const d = await api(`/v1/awards?market=${state.market}&limit=20`);
  const rows = d.items.map((a) => {
    const tr = document.createElement("tr");
    [a.market.toUpperCase(), a.operating_day, String(a.version), fmtTime(a.created_at, viewTz()), String(a.interval_count)]
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
    if (r.status === 401) { alertsMsg("Not acknowledged (401): the session ended; sign in again."); button.disabled = false; return; }
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
  const markets = [...new Set(d.items.map((s) => s.market.toUpperCase()))].sort();
  const select = $("market");
  if (select.options.length !== markets.length) {
    select.replaceChildren(...markets.map((m) => { const o = document.createElement("option"); o.value = m; o.textContent = m; return o; }));
  }
  if (!state.market || !markets.includes(state.market)) {
    // the market with the most sites is the first view
    const counts = markets.map((m) => [m, d.items.filter((s) => s.market.toUpperCase() === m).length]);
    counts.sort((a, b) => b[1] - a[1]);
    applyMarket(counts.length ? counts[0][0] : null);
  }
  renderSites();
}
function applyMarket(market, selected) {
  state.market = market;
  $("market").value = market || "";
  const first = marketSites()[0];
  state.tz = first ? first.timezone : "UTC";
  if (!state.day) state.day = todayIn(state.tz);
  $("day").value = state.day;
  $("tz").textContent = `times: ${state.tz} (${zoneAbbr(state.tz, localMidnight(state.day, state.tz) + 12 * 3600000)})`;
  $("events-tz") && ($("events-tz").textContent = state.tz);
  showSession();
  state.selected = selected || (marketSites().some((s) => s.site_id === state.selected) ? state.selected : (first ? first.site_id : null));
}
function setMarket(market, selected) {
  applyMarket(market, selected);
  renderSites();
  refreshView();
}
function refreshView() {
  return Promise.allSettled([loadFleet(), loadDetail(), loadRevenue(), loadReserve(), loadAwards()]).then((results) => {
    const failed = results.find((r) => r.status === "rejected");
    if (failed) showError(failed.reason.message);
    document.body.dataset.view = `${state.market} ${state.day}`;
  });
}

// ---- live stream (SSE over fetch; the session cookie authenticates it) ----
function setConn(on, text) { const c = $("conn"); c.className = `pill ${on ? "pill-on" : "pill-off"}`; c.textContent = `stream: ${text}`; state.stream = text; }
function logEvent(kind, data) {
  const li = document.createElement("li");
  const when = fmtTime(data.ts || new Date().toISOString(), viewTz());
  const k = document.createElement("span"); k.className = "k"; k.textContent = kind;
  li.appendChild(k);
  li.appendChild(document.createTextNode(` ${when} ${data.site_id || data.market || ""} ${data.summary || ""}`));
  const ol = $("events"); ol.prepend(li);
  while (ol.children.length > 100) ol.lastChild.remove();
  state.events += 1;
  document.body.dataset.events = String(state.events);
}
let fleetTimer = null;
function handleEvent(kind, data) {
  logEvent(kind, data);
  if (kind === "state" && data.site_id && state.sites.has(data.site_id)) {
    const s = state.sites.get(data.site_id);
    s.state = Object.assign({}, s.state || {}, data.state);
    renderSites();
    if (!fleetTimer) fleetTimer = setTimeout(() => { fleetTimer = null; loadFleet().catch(() => {}); }, 500);
  } else if (kind === "schedule") {
    loadDetail().catch(() => {}); loadRevenue().catch(() => {}); loadReserve().catch(() => {});
  } else if (kind === "awards") {
    loadAwards().catch(() => {}); loadReserve().catch(() => {});
  } else if (kind === "fleet") {
    loadSites().then(loadFleet).catch(() => {});
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
    if (!state.shapes) state.shapes = await fetch("/static/states.geojson").then((r) => r.json()).catch(() => null);
    await loadSites();
    await Promise.allSettled([refreshView(), loadAlerts()]);
    document.body.dataset.loaded = "true";
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
  $("keyform").hidden = true;
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
  $("who").addEventListener("click", () => { $("keyform").hidden = false; }); // switch key
  $("market").addEventListener("change", (ev) => { state.day = null; setMarket(ev.target.value); });
  $("day").addEventListener("change", (ev) => { if (ev.target.value) { state.day = ev.target.value; refreshView(); } });
  const r = await fetch("/v1/session", { credentials: "same-origin" }).catch(() => null);
  if (r && r.ok) { state.session = await r.json(); showSession(); start(); }
  else {
    showSession();
    showError(params.get("signin") === "url-key"
      ? "Keys are not accepted in links (they end up in logs and browser history): paste the key below to sign in."
      : "Sign in with an API key (create one with `bessfleet keys create --role viewer`).");
  }
  setInterval(() => { if (state.session && state.stream !== "live") loadSites().catch(() => {}); }, 30000);
  // ages move on without events: re-evaluate staleness and totals
  setInterval(() => { if (state.session) { renderSites(); loadFleet().catch(() => {}); } }, 30000);
  // severity escalations and closed conditions raise no stream event: refresh the list
  setInterval(() => { if (state.session) loadAlerts().catch(() => {}); }, 60000);
}
init();
