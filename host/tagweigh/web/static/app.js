// The operator page. Plain JavaScript, no framework: one state object, render functions that
// rebuild small parts of the page, server-sent events for every change. Data from the bridge is
// only ever put into the page as text (textContent), never as HTML.
import { TEXT } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const S = {
  server: {}, site: null, siteName: "", minerals: {}, reasons: {},
  stations: [], readings: [], day: null, sync: null,
  tab: localStorage.getItem("tw.tab") || "attention",
  filter: { verdict: "", device: "" },
  lang: localStorage.getItem("tw.lang") || ((navigator.language || "en").startsWith("fr") ? "fr" : "en"),
};
// When each reading first became visible (for bench/page.py and the browser tests).
const shown = new Map();
window.tw = { state: S, shown };

function t(key, vars) {
  let s = (TEXT[S.lang] && TEXT[S.lang][key]) ?? TEXT.en[key] ?? key;
  if (vars) for (const k in vars) s = s.replace("{" + k + "}", vars[k]);
  return s;
}

function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const k in attrs || {}) {
    const v = attrs[k];
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k === "style") Object.assign(el.style, v); // CSSOM: allowed by the page's CSP
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of kids.flat()) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

function mark(key) {
  if (shown.has(key)) return;
  shown.set(key, 0);
  requestAnimationFrame(() => shown.set(key, performance.timeOrigin + performance.now()));
  if (shown.size > 4000) shown.delete(shown.keys().next().value);
}

// ---- formatting --------------------------------------------------------------------------
function kg(g, e) {
  const d = e >= 1000 ? 0 : e >= 100 ? 1 : e >= 10 ? 2 : 3;
  return (g / 1000).toFixed(d);
}
const pad = (n) => String(n).padStart(2, "0");
function hms(ts) {
  const d = new Date(ts * 1000);
  return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
}
function ago(ts) {
  if (!ts) return t("never");
  const s = Math.max(0, Date.now() / 1000 - ts);
  if (s < 10) return t("just_now");
  const v = s < 90 ? Math.round(s) + " s" : s < 5400 ? Math.round(s / 60) + " min" : s < 172800 ? Math.round(s / 3600) + " h" : Math.round(s / 86400) + " d";
  return t("ago", { t: v });
}
const reasonText = (rid) => (S.reasons[rid] ? S.reasons[rid][S.lang] : rid);
const hintText = (rid) => (S.reasons[rid] ? S.reasons[rid]["hint_" + S.lang] : "");
const stepName = (n) => (n ? t("step_" + n) : "");
const mineralName = (m) => (S.minerals[m] ? S.minerals[m][S.lang] : m || "—");
function stationName(dev) {
  const st = S.stations.find((s) => s.device_id === dev);
  return (st && st.name) || dev;
}
const verdictWord = (r) => (r.voided ? t("voided").toUpperCase() : t("v_" + r.verdict));
const vclass = (r) => (r.voided ? "v-void" : "v-" + r.verdict);

// ---- header ------------------------------------------------------------------------------
function setConn(state) {
  $("conn").dataset.state = state;
  document.body.dataset.conn = state;
  $("conn-text").textContent = t(state);
}

function renderStatic() {
  document.documentElement.lang = S.lang;
  document.title = "tagweigh — " + (S.siteName || t("title"));
  $("site").textContent = S.siteName || S.site || t("title");
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  const lb = $("lang");
  lb.textContent = t("switch_to");
  lb.title = lb.ariaLabel = t("switch_label");
  setConn($("conn").dataset.state);
  const ro = S.server.readonly;
  $("ro").hidden = !ro;
  $("ro").textContent = t("readonly");
  $("ro").title = ro === "token" ? t("readonly_token") : ro ? t("readonly_ops") : "";
  for (const b of document.querySelectorAll(".tabs [role=tab]")) b.setAttribute("aria-selected", b.dataset.tab === S.tab);
  for (const p of document.querySelectorAll(".panel")) p.hidden = p.id !== "panel-" + S.tab;
}

function renderClock() {
  const d = new Date();
  $("clock").textContent = pad(d.getHours()) + ":" + pad(d.getMinutes());
}

// ---- stations ----------------------------------------------------------------------------
function stationCard(st) {
  if (!st.device_id) {
    return h("article", { class: "card waiting" }, h("p", { class: "wait" }, t("waiting_port"), " ", h("code", {}, st.port)));
  }
  const w = st.online ? st.weight : null;
  const last = st.last;
  let weight;
  if (!w) {
    weight = h("div", { class: "weight none" }, h("span", { class: "num" }, t("no_weight")));
  } else {
    const state = w.out_of_range ? "over" : w.stable ? "stable" : "moving";
    weight = h("div", { class: "weight " + state, "data-stable": w.stable ? "1" : "0" },
      h("span", { class: "num" }, kg(w.net_g, w.e_g)), h("span", { class: "unit" }, "kg"),
      h("span", { class: "state" }, state === "over" ? t("overload") : state === "stable" ? "✓ " + t("stable") : "≈ " + t("moving")));
  }
  let verdict;
  if (last) {
    verdict = h("div", { class: "verdict " + vclass(last) },
      h("div", { class: "vtop" }, h("span", { class: "vword" }, verdictWord(last)), h("span", { class: "vtag tag", title: t("last_tag") }, last.tag)),
      h("div", { class: "vreason" }, last.voided ? last.void_reason || "" : last.verdict === "accept" ? hintText("NONE") : reasonText(last.reason)));
  } else {
    verdict = h("div", { class: "verdict v-none" }, h("div", { class: "vreason" }, t("no_reading")));
  }
  const j = st.journal;
  let journal = null;
  if (j) {
    const pct = j.capacity ? Math.round((100 * j.used) / j.capacity) : j.pct || 0;
    journal = h("span", { class: "journal" + (pct >= 90 ? " bad" : pct >= 50 ? " warn" : ""), title: t("journal") },
      t("journal") + " ", h("span", { class: "bar" }, h("span", { style: { width: Math.max(2, Math.min(100, pct)) + "%" } })),
      " " + pct + "%");
  }
  const canAct = S.server.can_act && st.online;
  const status = st.online
    ? h("span", { class: "clock-state " + (st.clock_synced ? "ok" : "bad") }, (st.clock_synced ? "✓ " : "✗ ") + (st.clock_synced ? t("clock_ok") : t("clock_bad")))
    : h("span", {}, t("last_seen") + " " + ago(st.last_seen));
  const card = h("article", { class: "card" + (st.online ? "" : " offline"), "data-device": st.device_id },
    h("header", {},
      h("h2", {}, st.name || st.device_id),
      h("span", { class: "dev" }, "#" + st.device_id),
      h("span", { class: "online " + (st.online ? "yes" : "no") }, st.online ? t("online") : t("offline"))),
    h("div", { class: "sub" }, st.step ? stepName(st.step) + " · " : "", status, journal ? [" · ", journal] : null),
    weight,
    verdict,
    st.faults && st.faults.length ? h("div", { class: "faults" }, st.faults.map((f) => h("span", { class: "chip bad" }, t("fault_" + f)))) : null,
    h("footer", {},
      h("div", { class: "meta", title: t("weighed_at") }, last ? (last.time_estimated ? "≈" : "") + hms(last.time || last.received_at) : "\u00a0"),
      S.server.can_act ? h("button", { type: "button", class: "btn small", "data-op": "tare", disabled: !canAct, onclick: () => askCommand(st, "tare") }, t("tare")) : null,
      S.server.can_act ? h("button", { type: "button", class: "btn small", "data-op": "zero", disabled: !canAct, onclick: () => askCommand(st, "zero") }, t("zero")) : null));
  if (last) mark("card:" + st.device_id + ":" + last.seq);
  return card;
}

function renderStations() {
  const box = $("stations");
  const list = S.stations;
  box.replaceChildren(...(list.length ? list.map(stationCard) : [h("p", { class: "empty" }, t("no_stations"))]));
  box.dataset.count = list.length;
  renderFilters();
}

// ---- lists -------------------------------------------------------------------------------
function voidButton(r) {
  if (!S.server.can_act || r.voided) return null;
  return h("button", { type: "button", class: "btn small ghost", onclick: () => askVoid(r) }, t("void"));
}

function attentionItem(r) {
  return h("li", { class: "att " + vclass(r), "data-id": r.id },
    h("div", { class: "att-main" },
      h("div", { class: "att-title" }, h("span", { class: "pill " + vclass(r) }, verdictWord(r)), " ", reasonText(r.reason)),
      h("div", { class: "att-sub" }, h("b", { class: "tag" }, r.tag), " · " + kg(r.net_g, r.e_g) + " kg · " + stationName(r.device_id) + " · " + hms(r.time || r.received_at)),
      h("div", { class: "att-hint" }, h("b", {}, t("what_to_do") + t("colon")), hintText(r.reason))),
    voidButton(r));
}

function alertTitle(a) {
  const k = "alert_" + a.kind;
  let title = TEXT.en[k] !== undefined ? t(k) : a.kind;
  if (a.event) title += t("colon") + (TEXT.en["ev_" + a.event] !== undefined ? t("ev_" + a.event) : a.event);
  return title;
}

function alertItem(g) {
  const a = g.latest;
  return h("li", { class: "att v-alert" },
    h("div", { class: "att-main" },
      h("div", { class: "att-title" }, h("span", { class: "pill v-alert" }, t("alert").toUpperCase()), " ", alertTitle(a)),
      h("div", { class: "att-sub" }, (a.device_id ? stationName(a.device_id) + " · " : "") + (g.n > 1 ? t("times", { n: g.n }) + " · " : "") + hms(a.at)),
      h("div", { class: "att-hint" }, h("b", {}, t("what_to_do") + t("colon")), t("alert_hint"))));
}

function groupAlerts(alerts) {
  const groups = new Map();
  for (const a of alerts) { // newest first: the first of each group is its latest
    const k = a.kind + "|" + a.device_id + "|" + (a.event || "");
    const g = groups.get(k);
    if (g) g.n += 1; else groups.set(k, { latest: a, n: 1 });
  }
  return [...groups.values()];
}

function renderAttention() {
  const d = S.day || { attention: [], alerts: [] };
  const items = [...d.attention.map(attentionItem), ...groupAlerts(d.alerts).map(alertItem)];
  $("n-att").textContent = items.length;
  $("n-att").dataset.zero = items.length ? "0" : "1";
  $("panel-attention").replaceChildren(items.length ? h("ul", { class: "att-list" }, items) : h("p", { class: "empty good" }, "✓ " + t("nothing_attention")));
}

function renderFilters() {
  const f = S.filter;
  const chips = ["", "accept", "warn", "reject", "voided"].map((v) =>
    h("button", { type: "button", class: "chip filter", "aria-pressed": f.verdict === v, onclick: () => { f.verdict = v; renderBags(); renderFilters(); } }, v ? t(v) : t("all")));
  const sel = h("select", { "aria-label": t("col_station"), onchange: (e) => { f.device = e.target.value; renderBags(); } },
    h("option", { value: "" }, t("all_stations")),
    S.stations.filter((s) => s.device_id).map((s) => h("option", { value: s.device_id, selected: f.device === s.device_id }, s.name || s.device_id)));
  $("filters").replaceChildren(...chips, sel);
}

function renderBags() {
  const f = S.filter;
  const rows = S.readings.filter((r) => (!f.device || r.device_id === f.device) &&
    (!f.verdict || (f.verdict === "voided" ? r.voided : !r.voided && r.verdict === f.verdict)));
  $("n-bags").textContent = S.readings.length;
  $("bag-rows").replaceChildren(...rows.map((r) => {
    mark("row:" + r.id);
    return h("tr", { class: vclass(r), "data-id": r.id },
      h("td", { class: "time" }, (r.time_estimated ? "≈" : "") + hms(r.time || r.received_at)),
      h("td", { class: "tag" }, r.tag),
      h("td", { class: "num" }, kg(r.net_g, r.e_g) + " kg"),
      h("td", {}, stepName(r.step)),
      h("td", {}, stationName(r.device_id)),
      h("td", {}, h("span", { class: "pill " + vclass(r) }, verdictWord(r)),
        r.voided ? h("div", { class: "why" }, r.void_reason) : r.verdict !== "accept" ? h("div", { class: "why" }, reasonText(r.reason)) : null),
      h("td", { class: "act" }, voidButton(r)));
  }));
  $("no-bags").hidden = rows.length > 0;
}

function renderTotals() {
  const d = S.day;
  if (!d) return;
  const c = d.counts;
  let bags = 0, grams = 0, rej = 0;
  const rows = d.totals.map((x) => {
    bags += x.bags; grams += x.net_g; rej += x.rejected;
    return h("tr", {}, h("td", {}, stepName(x.step)), h("td", {}, mineralName(x.mineral)), h("td", { class: "num" }, x.bags),
      h("td", { class: "num" }, kg(x.net_g, 10) + " kg"), h("td", { class: "num" }, x.rejected || ""));
  });
  $("panel-totals").replaceChildren(
    h("div", { class: "counts" },
      h("span", { class: "count-box v-accept" }, h("b", {}, c.accept || 0), t("accept")),
      h("span", { class: "count-box v-warn" }, h("b", {}, c.warn || 0), t("warn")),
      h("span", { class: "count-box v-reject" }, h("b", {}, c.reject || 0), t("reject")),
      h("span", { class: "count-box v-void" }, h("b", {}, d.voided.length), t("voided"))),
    h("table", { class: "totals" },
      h("thead", {}, h("tr", {}, ["col_step", "col_mineral", "col_bags", "col_net", "col_rejected"].map((k, i) => h("th", { class: i >= 2 ? "num" : null }, t(k))))),
      h("tbody", {}, rows),
      h("tfoot", {}, h("tr", {}, h("td", { colspan: 2 }, "Σ"), h("td", { class: "num" }, bags), h("td", { class: "num" }, kg(grams, 10) + " kg"), h("td", { class: "num" }, rej || "")))),
    h("p", { class: "note" }, t("totals_note")));
}

function renderSync() {
  const y = S.sync;
  if (!y) return;
  const pill = $("sync-pill");
  const bad = !y.storage_ok || y.last_error;
  pill.dataset.state = bad ? "bad" : y.backlog ? "waiting" : "ok";
  pill.textContent = "⇅ " + (!y.storage_ok ? t("sync_error") : y.last_error ? t("sync_error") : y.backlog ? t("sync_waiting", { n: y.backlog }) : t("sync_ok"));
  const st = $("storage");
  st.hidden = y.storage_ok;
  st.textContent = y.storage_ok ? "" : t("storage_bad") + " " + (y.storage_error || "");
  $("panel-sync").replaceChildren(
    h("dl", { class: "sync" },
      h("dt", {}, t("backlog")), h("dd", { class: "big", id: "sync-backlog" }, y.backlog ?? "?"),
      h("dt", {}, t("last_upload")), h("dd", {}, y.last_success ? hms(y.last_success) + " (" + ago(y.last_success) + ")" : t("never")),
      h("dt", {}, t("upload_error")), h("dd", { class: y.last_error ? "err" : "" }, y.last_error || t("no_error")),
      y.disk_warning ? [h("dt", {}, t("disk_warning")), h("dd", { class: "err" }, y.disk_warning)] : null),
    y.uploader ? null : h("p", { class: "note" }, t("no_uploader")),
    S.server.can_act ? h("button", { type: "button", class: "btn primary", id: "retry", disabled: !y.uploader, onclick: askRetry }, t("retry_now")) : null);
}

function renderAll() {
  renderStatic();
  renderStations();
  renderAttention();
  renderBags();
  renderTotals();
  renderSync();
}

// ---- live updates ------------------------------------------------------------------------
function addReadings(list) {
  const seen = new Set(S.readings.map((r) => r.id));
  const fresh = list.filter((r) => !seen.has(r.id));
  S.readings = [...fresh, ...S.readings].sort((a, b) => b.id - a.id).slice(0, 500);
  renderBags();
}

let es = null;
function connect() {
  if (es) es.close();
  es = new EventSource("/api/events");
  es.addEventListener("state", (e) => {
    const d = JSON.parse(e.data);
    S.server = d.server; S.site = d.site; S.siteName = d.site_name; S.minerals = d.minerals || {};
    S.stations = d.stations; S.readings = d.readings; S.day = d.day; S.sync = d.sync;
    setConn("live");
    renderAll();
  });
  es.addEventListener("stations", (e) => { S.stations = JSON.parse(e.data); renderStations(); });
  es.addEventListener("readings", (e) => addReadings(JSON.parse(e.data)));
  es.addEventListener("day", (e) => {
    S.day = JSON.parse(e.data);
    const v = new Set(S.day.voided);
    for (const r of S.readings) if (v.has(r.id) && !r.voided) r.voided = true;
    renderAttention(); renderTotals(); renderBags();
  });
  es.addEventListener("sync", (e) => { S.sync = JSON.parse(e.data); renderSync(); });
  es.addEventListener("reset", () => { S.readings = []; renderBags(); });
  es.onopen = () => setConn("live");
  es.onerror = () => {
    setConn("reconnecting");
    // The browser retries by itself while the bridge is down; if it gave up (an error page
    // from a proxy, say), start again.
    if (es.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
  };
}

// ---- actions -----------------------------------------------------------------------------
async function post(url, body) {
  try {
    const r = await fetch(url, { method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": S.server.csrf || "" }, body: JSON.stringify(body) });
    try { return await r.json(); } catch { return { ok: false, error: "other", detail: String(r.status) }; }
  } catch {
    return { ok: false, error: "network" };
  }
}

function toast(text, kind) {
  const el = $("toast");
  el.textContent = text;
  el.dataset.kind = kind || "ok";
  el.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 6000);
}

function errorText(j) {
  if (j.error === "pin_locked") return t("pin_locked", { s: Math.ceil(j.retry_in_s || 0) });
  if (TEXT.en[j.error] !== undefined) return t(j.error);
  if (TEXT.en["err_" + j.error] !== undefined) return t("err_" + j.error) + (j.detail ? " " + j.detail : "");
  return t("err_other") + " " + j.error;
}

function resultText(j) {
  const k = "res_" + j.result;
  return TEXT.en[k] !== undefined ? t(k) : t("err_other") + " " + j.result;
}

const pin = { value: "", submit: null, voidMode: false };

function openPin(title, sub, voidMode, submit) {
  pin.value = ""; pin.submit = submit; pin.voidMode = voidMode;
  $("toast").hidden = true;
  $("toast").textContent = "";
  $("pin-title").textContent = title;
  $("pin-sub").textContent = sub || "";
  $("void-box").hidden = !voidMode;
  $("void-text").value = "";
  $("void-text").placeholder = t("void_reason");
  $("void-choices").replaceChildren(...t("void_reasons").map((v) =>
    h("button", { type: "button", class: "chip filter", onclick: (e) => {
      $("void-text").value = v;
      for (const b of $("void-choices").children) b.setAttribute("aria-pressed", b === e.currentTarget);
    } }, v)));
  $("pin-msg").textContent = "";
  $("pin-ok").disabled = false;
  renderDots();
  for (const el of $("pin-dialog").querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
  $("pin-dialog").showModal();
}

function renderDots() {
  $("pin-dots").replaceChildren(...Array.from({ length: Math.max(4, pin.value.length) }, (_, i) => h("span", { class: i < pin.value.length ? "on" : "" })));
}

function key(k) {
  if (k === "C") pin.value = "";
  else if (k === "⌫") pin.value = pin.value.slice(0, -1);
  else if (pin.value.length < 12) pin.value += k;
  renderDots();
}

async function submitPin(ev) {
  ev.preventDefault();
  const reason = $("void-text").value.trim();
  if (!pin.value) { $("pin-msg").textContent = t("pin_missing"); return; }
  if (pin.voidMode && !reason) { $("pin-msg").textContent = t("reason_missing"); return; }
  $("pin-msg").textContent = t("sending");
  $("pin-ok").disabled = true;
  const j = await pin.submit(pin.value, reason);
  $("pin-ok").disabled = false;
  if (j.error === "pin_wrong" || j.error === "pin_locked" || j.error === "pin_missing" || j.error === "reason_missing") {
    pin.value = ""; renderDots();
    $("pin-msg").textContent = errorText(j);
    return;
  }
  $("pin-dialog").close();
  if (j.error === "csrf") connect();
  toast(j.error ? errorText(j) : (j.operator ? j.operator + ": " : "") + resultText(j), j.ok ? "ok" : "bad");
}

function askCommand(st, op) {
  const name = st.name || st.device_id;
  openPin(t(op + "_title", { name }), "", false, (p) => post("/api/stations/" + encodeURIComponent(st.device_id) + "/" + op, { pin: p }));
}

function askVoid(r) {
  openPin(t("void_title"), r.tag + " · " + kg(r.net_g, r.e_g) + " kg · " + stationName(r.device_id) + " · " + hms(r.time || r.received_at), true,
    (p, reason) => post("/api/readings/" + r.id + "/void", { pin: p, reason }));
}

function askRetry() {
  openPin(t("retry_title"), "", false, (p) => post("/api/upload/retry", { pin: p }));
}

// ---- start -------------------------------------------------------------------------------
function setup() {
  $("keypad").replaceChildren(...["1", "2", "3", "4", "5", "6", "7", "8", "9", "C", "0", "⌫"].map((k) =>
    h("button", { type: "button", class: "key", "data-key": k, onclick: () => key(k) }, k)));
  $("pin-form").addEventListener("submit", submitPin);
  $("pin-cancel").addEventListener("click", () => $("pin-dialog").close());
  $("pin-dialog").addEventListener("keydown", (e) => {
    if (e.key === "Enter") { e.preventDefault(); submitPin(e); return; } // never "click" a focused key
    if (e.target === $("void-text")) return;
    if (/^[0-9]$/.test(e.key)) { key(e.key); e.preventDefault(); }
    else if (e.key === "Backspace") { key("⌫"); e.preventDefault(); }
  });
  $("lang").addEventListener("click", () => {
    S.lang = S.lang === "fr" ? "en" : "fr";
    localStorage.setItem("tw.lang", S.lang);
    renderAll();
  });
  for (const b of document.querySelectorAll(".tabs [role=tab]")) {
    b.addEventListener("click", () => { S.tab = b.dataset.tab; localStorage.setItem("tw.tab", S.tab); renderStatic(); });
  }
  $("sync-pill").addEventListener("click", () => { S.tab = "sync"; localStorage.setItem("tw.tab", S.tab); renderStatic(); });
  renderStatic();
  renderClock();
  setInterval(renderClock, 1000);
  setInterval(() => { renderSync(); }, 10000);
  fetch("/api/reasons").then((r) => r.json()).then((r) => { S.reasons = r; renderAll(); }).catch(() => {});
  connect();
}

setup();
