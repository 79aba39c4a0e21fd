// The calculator page: the Positions Editor and the Results, over the /api/v1 routes.
// The page holds the positions; every edit goes to the server's editing functions and comes
// back as the new list, so the rules live in one place. No cookies, no storage.
"use strict";

const POINTS = ["-5", "-4", "-3", "-2", "-1", "+1", "+2", "+3", "+4", "+5"];
const POSITION_COLUMNS = [
  ["status", "Status"], ["firm", "Clrng Firm"], ["account", "Account ID"],
  ["account_type", "Acct Type"], ["product_group", "Prod Grp"], ["class_group", "Class Grp"],
  ["underlying", "Underlying"], ["security_type", "Type"], ["symbol", "Symbol"],
  ["exchange", "Exchange"], ["series_date", "Ser/Ctr Date"], ["expiration_date", "Exp Date"],
  ["strike", "Strike"], ["put_call", "C/P"], ["quantity", "Quantity"],
  ["basket_id", "Bskt ID"], ["market_value", "USD Price"],
];
const API_FIELDS = [
  "firm", "account", "account_type", "symbol", "security_type", "put_call", "series_date",
  "expiration_date", "strike", "quantity", "market_value", "basket_id", "exercise_style",
  "settlement_style",
];

const state = {
  theoDate: null,
  contracts: [],
  columns: [],
  contractSort: { column: "", descending: false },
  contractChecked: new Set(),
  positions: [],
  checked: new Set(),
  visible: null, // rows shown after the Selected Positions filter, null = all
  report: null,
  reportPositions: [],
  tab: "accounts",
  basket: null,
  upload: null,
};

const $ = (sel) => document.querySelector(sel);
const money = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const fmtMoney = (v) => (v === null || v === undefined || v === "" ? "" : money.format(Math.round(v)));
const fmtStrike = (v) => (v ? Number(v).toFixed(4) : "");
function fmtDate(iso) {
  if (!iso) return "";
  const [y, m, d] = iso.split("-");
  return `${m}/${d}/${y}`;
}

function say(text, kind = "error") {
  const box = $("#message");
  if (!text) { box.hidden = true; return; }
  box.textContent = text;
  box.className = `message ${kind}`;
  box.hidden = false;
}

class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.reason = error.reason;
    this.field = error.field;
    this.line = error.line;
  }
}

async function api(path, { method = "GET", body, type = "application/json", raw = false } = {}) {
  const init = { method, headers: {}, credentials: "omit" };
  if (body !== undefined) {
    init.body = typeof body === "string" || body instanceof ArrayBuffer ? body : JSON.stringify(body);
    init.headers["content-type"] = type;
  }
  const res = await fetch(path, init);
  if (!res.ok) {
    let err = { message: `HTTP ${res.status}` };
    try { err = (await res.json()).error || err; } catch (_) { /* not JSON */ }
    throw new ApiError(res.status, err);
  }
  return raw ? res : res.json();
}

function describe(err) {
  const where = [err.line ? `row ${err.line}` : "", err.field ? `field ${err.field}` : ""]
    .filter(Boolean).join(", ");
  return `${err.reason ? err.reason + ": " : ""}${err.message}${where ? ` (${where})` : ""}`;
}

function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === undefined || text === null ? "" : String(text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}

function head(table, labels, onClick) {
  const thead = table.tHead;
  thead.textContent = "";
  const tr = document.createElement("tr");
  labels.forEach((label, i) => {
    const th = document.createElement("th");
    if (label instanceof Node) th.appendChild(label); else th.textContent = label;
    if (onClick) th.addEventListener("click", () => onClick(i));
    tr.appendChild(th);
  });
  thead.appendChild(tr);
}

function download(name, blob) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}

function formValues(form) {
  const out = {};
  for (const el of form.elements) {
    if (el.name) out[el.name] = el.value.trim();
  }
  return out;
}

// -- P&L sets and available contracts -------------------------------------------------------

async function loadSets() {
  const doc = await api("/api/v1/theo-sets");
  const select = $("#f-theo-date");
  select.textContent = "";
  for (const s of doc.theo_sets) {
    const o = document.createElement("option");
    o.value = s.date;
    o.textContent = fmtDate(s.date);
    select.appendChild(o);
  }
  state.theoDate = doc.latest;
  $("#theo-info").textContent = doc.latest
    ? `P&L set ${fmtDate(doc.latest)} (${doc.theo_sets[0].instruments} instruments)`
    : "no P&L set is loaded";
  if (!doc.latest) say("No theoretical P&L set is loaded on the server yet.");
}

function theoQuery() {
  return state.theoDate ? `theo_date=${encodeURIComponent(state.theoDate)}` : "";
}

async function searchContracts() {
  const f = formValues($("#contract-filter"));
  state.theoDate = f.theo_date || state.theoDate;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(f)) if (v) q.set(k, v);
  if (state.contractSort.column) q.set("sort", state.contractSort.column);
  if (state.contractSort.descending) q.set("descending", "true");
  try {
    const doc = await api(`/api/v1/contracts?${q}`);
    state.columns = doc.columns;
    state.contracts = doc.contracts;
    state.contractChecked.clear();
    $("#contracts-count").textContent = `${doc.total} contracts` +
      (doc.total > doc.contracts.length ? ` (first ${doc.contracts.length} shown)` : "");
    say("");
    renderContracts();
  } catch (err) {
    say(describe(err));
  }
}

function renderContracts() {
  const table = $("#contracts-table");
  const all = document.createElement("input");
  all.type = "checkbox";
  all.title = "select all";
  all.addEventListener("click", (e) => {
    e.stopPropagation();
    state.contractChecked = all.checked ? new Set(state.contracts.map((c) => c.row)) : new Set();
    renderContracts();
  });
  all.checked = state.contracts.length > 0 && state.contractChecked.size === state.contracts.length;
  const labels = [all, "#", ...state.columns.map(([name, heading]) => {
    const s = state.contractSort;
    return s.column === name ? `${heading} ${s.descending ? "▼" : "▲"}` : heading;
  })];
  head(table, labels, (i) => {
    if (i === 0) return;
    // the first sortable heading returns to the default sort
    const column = i === 1 ? "" : state.columns[i - 2][0];
    const s = state.contractSort;
    s.descending = column !== "" && s.column === column ? !s.descending : false;
    s.column = column;
    searchContracts();
  });
  const tbody = table.tBodies[0];
  tbody.textContent = "";
  state.contracts.forEach((c, i) => {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = state.contractChecked.has(c.row);
    box.addEventListener("change", () => {
      if (box.checked) state.contractChecked.add(c.row); else state.contractChecked.delete(c.row);
    });
    td.appendChild(box);
    tr.appendChild(td);
    cell(tr, i + 1, "num");
    for (const [name] of state.columns) {
      const v = c[name];
      if (name === "strike") cell(tr, fmtStrike(v), "num");
      else if (name.endsWith("_date")) cell(tr, fmtDate(v));
      else cell(tr, v);
    }
    tbody.appendChild(tr);
  });
}

let suggestTimer = null;
function suggest(input) {
  clearTimeout(suggestTimer);
  suggestTimer = setTimeout(async () => {
    const f = formValues($("#contract-filter"));
    const q = new URLSearchParams({ account_type: f.account_type, column: input.name, prefix: input.value });
    if (state.theoDate) q.set("theo_date", state.theoDate);
    try {
      const doc = await api(`/api/v1/contracts/suggest?${q}`);
      const list = document.getElementById(`dl-${input.name}`);
      list.textContent = "";
      for (const v of doc.values) {
        const o = document.createElement("option");
        o.value = v;
        list.appendChild(o);
      }
    } catch (_) { /* suggestions are a convenience */ }
  }, 150);
}

// -- Selected Positions ---------------------------------------------------------------------

function apiRow(p) {
  const out = {};
  for (const k of API_FIELDS) if (p[k] !== undefined) out[k] = p[k];
  return out;
}

async function edit(op, args = {}) {
  const body = { positions: state.positions.map(apiRow), op, ...args };
  const doc = await api(`/api/v1/positions/edit?${theoQuery()}`, { method: "POST", body });
  if (op !== "select") {
    state.positions = doc.positions;
    state.checked.clear();
    state.visible = null;
  }
  return doc;
}

async function addSelectedContracts() {
  const rows = state.contracts.filter((c) => state.contractChecked.has(c.row)).map((c) => c.row);
  if (!rows.length) { say("Select one or more available contracts first."); return; }
  try {
    await edit("add_contracts", { rows, firm: "0", quantity: 0 });
    state.contractChecked.clear();
    renderContracts();
    renderPositions();
    say(`${rows.length} contract(s) added with quantity 0: enter the quantities.`, "info");
  } catch (err) { say(describe(err)); }
}

function positionStatus(p) {
  if (p.security_type === "S" && !p.in_set) return "Not in P&L";
  if (!p.in_set) return "Invalid series";
  return p.quantity === 0 ? "Qty needed" : "OK";
}

function renderPositions() {
  const table = $("#positions-table");
  const all = document.createElement("input");
  all.type = "checkbox";
  all.title = "select all";
  const shown = state.visible ?? state.positions.map((_, i) => i);
  all.checked = shown.length > 0 && shown.every((i) => state.checked.has(i));
  all.addEventListener("click", (e) => {
    e.stopPropagation();
    if (all.checked) shown.forEach((i) => state.checked.add(i)); else state.checked.clear();
    renderPositions();
  });
  head(table, [all, "#", ...POSITION_COLUMNS.map(([, h]) => h)]);
  const tbody = table.tBodies[0];
  tbody.textContent = "";
  for (const i of shown) {
    const p = state.positions[i];
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = state.checked.has(i);
    box.addEventListener("change", () => {
      if (box.checked) state.checked.add(i); else state.checked.delete(i);
    });
    td.appendChild(box);
    tr.appendChild(td);
    cell(tr, i + 1, "num");
    for (const [name] of POSITION_COLUMNS) {
      if (name === "status") cell(tr, positionStatus(p));
      else if (name === "quantity") {
        const q = document.createElement("input");
        q.className = "qty";
        q.inputMode = "numeric";
        q.value = String(p.quantity);
        q.setAttribute("aria-label", `quantity of row ${i + 1}`);
        q.addEventListener("change", () => setQuantity(i, q));
        const qtd = document.createElement("td");
        qtd.appendChild(q);
        tr.appendChild(qtd);
      } else if (name === "strike") cell(tr, fmtStrike(p.strike), "num");
      else if (name === "market_value") cell(tr, p.market_value ? p.market_value.toFixed(2) : "", "num");
      else if (name.endsWith("_date")) cell(tr, fmtDate(p[name]));
      else cell(tr, p[name]);
    }
    if (p.quantity === 0) tr.classList.add("zero");
    tbody.appendChild(tr);
  }
  const n = state.positions.length;
  $("#positions-count").textContent = state.visible
    ? `${shown.length} of ${n} positions` : `${n} positions`;
}

async function setQuantity(i, input) {
  const text = input.value.trim().replace(/,/g, "");
  if (!/^[-+]?\d+$/.test(text)) {
    say(`Row ${i + 1}: the quantity must be a whole number (negative for short).`);
    input.value = String(state.positions[i].quantity);
    return;
  }
  try {
    const visible = state.visible;
    await edit("set_quantity", { rows: [i], quantity: Number(text) });
    state.visible = visible;
    say("");
  } catch (err) { say(describe(err)); }
  renderPositions();
}

function checkedRows() {
  return [...state.checked].sort((a, b) => a - b);
}

function openModify() {
  const rows = checkedRows();
  if (!rows.length) { say("Select the records to modify first."); return; }
  const table = $("#modify-table");
  head(table, ["#", "Clng Firm", "Account ID", "Acct Type", "Type", "Symbol", "Ser/Ctr Date", "Strike", "C/P", "Quantity", "Bskt ID"]);
  const tbody = table.tBodies[0];
  tbody.textContent = "";
  for (const i of rows) {
    const p = state.positions[i];
    const tr = document.createElement("tr");
    [i + 1, p.firm, p.account, p.account_type, p.security_type, p.symbol, fmtDate(p.series_date),
      fmtStrike(p.strike), p.put_call, p.quantity, p.basket_id].forEach((v) => cell(tr, v));
    tbody.appendChild(tr);
  }
  $("#modify-form").reset();
  $("#modify-dialog").showModal();
}

async function applyModify(e) {
  e.preventDefault();
  const f = formValues($("#modify-form"));
  const args = { rows: checkedRows() };
  for (const k of ["firm", "account", "account_type", "basket_id"]) if (f[k]) args[k] = f[k];
  try {
    await edit("modify", args);
    $("#modify-dialog").close();
    say("");
    renderPositions();
  } catch (err) { say(describe(err)); $("#modify-dialog").close(); }
}

async function saveStock(e) {
  e.preventDefault();
  const f = formValues($("#stock-form"));
  const error = $("#stock-error");
  const missing = ["account_type", "symbol", "price", "quantity"].filter((k) => !f[k]);
  if (missing.length) {
    error.textContent = "Account Type, Symbol, USD Price and Quantity are required.";
    error.hidden = false;
    return;
  }
  try {
    await edit("add_stock", {
      firm: f.firm || "0", account: f.account, account_type: f.account_type,
      symbol: f.symbol.toUpperCase(), price: Number(f.price), quantity: Number(f.quantity),
      basket_id: f.basket_id,
    });
    $("#stock-dialog").close();
    renderPositions();
  } catch (err) {
    error.textContent = err.reason === "STOCK_IN_SET"
      ? `${f.symbol.toUpperCase()} is included in the P&L file and cannot be added here: ` +
        "add it through the Available Contracts filter."
      : describe(err);
    error.hidden = false;
  }
}

let deleteRows = null;
function askDelete(all) {
  const rows = all ? null : checkedRows();
  if (!all && !rows.length) { say("Select the records to delete first."); return; }
  if (!state.positions.length) return;
  deleteRows = rows;
  $("#delete-question").textContent = all
    ? `Delete all ${state.positions.length} records?` : `Delete the ${rows.length} selected record(s)?`;
  $("#delete-dialog").showModal();
}

async function confirmDelete(e) {
  e.preventDefault();
  $("#delete-dialog").close();
  try {
    await edit("delete", { rows: deleteRows });
    renderPositions();
  } catch (err) { say(describe(err)); }
}

async function filterPositions(e) {
  e.preventDefault();
  const f = formValues($("#position-filter"));
  const active = Object.values(f).some(Boolean);
  if (!active) { state.visible = null; renderPositions(); return; }
  try {
    const doc = await edit("select", { filter: f });
    state.visible = doc.selected;
    renderPositions();
  } catch (err) { say(describe(err)); }
}

async function savePositions(to) {
  const rows = checkedRows();
  const chosen = rows.length ? rows.map((i) => state.positions[i]) : state.positions;
  if (!chosen.length) { say("There are no positions to export."); return; }
  try {
    const res = await api(`/api/v1/positions/convert?to=${to}`, {
      method: "POST", body: { positions: chosen.map(apiRow) }, raw: true,
    });
    download(to === "csv" ? "positions.csv" : "positions.txt", await res.blob());
  } catch (err) { say(describe(err)); }
}

async function uploadFile(input) {
  const file = input.files[0];
  input.value = "";
  if (!file) return;
  try {
    const body = await file.arrayBuffer();
    const doc = await api(`/api/v1/positions/convert?to=json&${theoQuery()}`, {
      method: "POST", body, type: "text/plain",
    });
    state.upload = { name: file.name, doc };
    showUpload();
  } catch (err) { say(`${file.name}: ${describe(err)}`); }
}

function showUpload() {
  const { name, doc } = state.upload;
  $("#upload-name").textContent = `${name} (${doc.format.toUpperCase()}), P&L set ${fmtDate(doc.theo_date)}`;
  const counts = $("#upload-counts");
  counts.textContent = "";
  for (const [k, label] of [["accepted", "Accepted"], ["rejected", "Rejected"],
    ["invalid_series", "Invalid series"], ["warnings", "Warnings"], ["total", "Total"]]) {
    const tr = document.createElement("tr");
    cell(tr, label);
    cell(tr, doc.counts[k], "num");
    counts.appendChild(tr);
  }
  renderProblems($("#upload-problems"), doc.problems);
  $("#upload-dialog").showModal();
}

function renderProblems(table, problems) {
  head(table, ["Line", "Kind", "Reason", "Field", "Value", "Message"]);
  const tbody = table.tBodies[0];
  tbody.textContent = "";
  for (const p of problems) {
    const tr = document.createElement("tr");
    [p.line, p.kind, p.reason, p.field, p.value, p.message].forEach((v) => cell(tr, v));
    tbody.appendChild(tr);
  }
}

function csvField(v) {
  const s = v === null || v === undefined ? "" : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function errorLog() {
  const { name, doc } = state.upload;
  const lines = ["line,kind,reason,field,value,message"];
  for (const p of doc.problems) {
    lines.push([p.line, p.kind, p.reason, p.field, p.value, p.message].map(csvField).join(","));
  }
  download(`${name.replace(/\.[^.]*$/, "")}.errors.csv`, new Blob([lines.join("\n") + "\n"], { type: "text/csv" }));
}

function acceptUpload(e) {
  e.preventDefault();
  state.positions = state.positions.concat(state.upload.doc.positions);
  state.visible = null;
  $("#upload-dialog").close();
  renderPositions();
  say(`${state.upload.doc.positions.length} position(s) added from ${state.upload.name}.`, "info");
}

// -- calculation and results ----------------------------------------------------------------

async function submit() {
  if (!state.positions.length) { say("Add positions before submitting."); return; }
  const zero = state.positions.map((p, i) => (p.quantity === 0 ? i + 1 : 0)).filter(Boolean);
  if (zero.length) {
    say(`Position quantities must not be zero to calculate a requirement (rows ${zero.slice(0, 20).join(", ")}${zero.length > 20 ? ", …" : ""}).`);
    return;
  }
  try {
    $("#submit").disabled = true;
    state.report = await api(`/api/v1/margin?${theoQuery()}`, {
      method: "POST", body: { positions: state.positions.map(apiRow) },
    });
    state.reportPositions = state.positions.slice();
    state.basket = null;
    say("");
    $("#show-results").disabled = false;
    showView("results");
    openTab("accounts");
  } catch (err) { say(describe(err)); } finally { $("#submit").disabled = false; }
}

function showView(which) {
  $("#positions-view").hidden = which !== "positions";
  $("#results-view").hidden = which !== "results";
  $("#show-positions").classList.toggle("active", which === "positions");
  $("#show-results").classList.toggle("active", which === "results");
}

// Flatten the report into rows per tab; every row carries the fields the filter looks at.
function resultRows(tab) {
  const r = state.report;
  const out = [];
  r.accounts.forEach((a) => {
    const acct = { firm: a.firm, account: a.account, account_type: a.account_type };
    if (tab === "accounts") {
      out.push({ ...acct, label: "Reqt", nav: a.nav, risk: a.risk, minimum: a.minimum, requirement: a.requirement });
      return;
    }
    for (const u of a.groups) {
      const port = u.level === "portfolio_group" ? u.id : "";
      const pgs = u.level === "portfolio_group" ? u.product_groups
        : u.level === "product_group" ? [{ ...u, id: u.id }] : [];
      const loose = u.level === "class_group" ? [u] : [];
      if (tab === "groups") {
        for (const pg of pgs) {
          for (const row of ["gains", "losses", "total"]) {
            out.push({ ...acct, portfolio_group: port, product_group: pg.id, label: row[0].toUpperCase() + row.slice(1),
              nav: row === "total" ? pg.nav : null, minimum: row === "total" ? pg.minimum : null,
              requirement: u.level === "product_group" && row === "total" ? u.requirement : null, pnl: pg[row] });
          }
        }
        if (u.level !== "product_group") {
          for (const row of ["gains", "losses", "total"]) {
            out.push({ ...acct, portfolio_group: port, product_group: u.product_group || "", class_group: u.level === "class_group" ? u.id : undefined,
              label: `${port || u.id} ${row[0].toUpperCase() + row.slice(1)}`, nav: row === "total" ? u.nav : null,
              minimum: row === "total" ? u.minimum : null, requirement: row === "total" ? u.requirement : null, pnl: u[row], unit: true });
          }
        }
        continue;
      }
      const classes = [];
      for (const pg of pgs) for (const cg of pg.class_groups) classes.push([pg.id, cg]);
      for (const cg of loose) classes.push([cg.product_group, cg]);
      for (const [pgId, cg] of classes) {
        const base = { ...acct, portfolio_group: port, product_group: pgId, class_group: cg.id };
        if (tab === "classes") {
          out.push({ ...base, basket_id: cg.basket_id || "", label: cg.id, nav: cg.nav, minimum: cg.minimum, pnl: cg.total });
          continue;
        }
        for (const c of cg.contracts) {
          const p = state.reportPositions[c.line - 1] || {};
          const row = { ...base, symbol: c.symbol, security_type: c.security_type, put_call: c.put_call || "",
            series_date: c.series_date || "", expiration_date: p.expiration_date || "", strike: c.strike,
            quantity: c.quantity, basket_id: c.basket_id || "", exchange: p.exchange || "",
            nav: c.nav, minimum: c.minimum, pnl: c.pnl, label: c.symbol };
          if (tab === "contracts") out.push(row);
          else if (tab === "baskets" && state.basket && c.basket_id === state.basket.id &&
            a.firm === state.basket.firm && a.account === state.basket.account) out.push(row);
        }
      }
    }
  });
  if (tab === "accounts") {
    for (const f of r.firms) out.push({ firm: f.firm, account: "", account_type: "", label: "Firm Reqt", nav: f.nav, requirement: f.requirement, total: true });
  }
  return out;
}

const TAB_COLUMNS = {
  accounts: [["firm", "Clrng Firm"], ["account", "Acct ID"], ["account_type", "Acct Type"], ["label", ""],
    ["nav", "NAV", "money"], ["risk", "Risk", "money"], ["minimum", "Minimum", "money"], ["requirement", "Requirement", "money"]],
  groups: [["firm", "Clrng Firm"], ["account", "Acct ID"], ["account_type", "Acct Type"], ["portfolio_group", "Port Grp"],
    ["product_group", "Prod Grp"], ["label", ""], ["nav", "NAV", "money"], ["requirement", "Requirement", "money"],
    ["minimum", "Minimum", "money"]],
  classes: [["firm", "Clrng Firm"], ["account", "Acct ID"], ["account_type", "Acct Type"], ["portfolio_group", "Port Grp"],
    ["product_group", "Prod Grp"], ["class_group", "Class Grp"], ["basket_id", "Bskt ID"], ["nav", "NAV", "money"],
    ["minimum", "Minimum", "money"]],
  contracts: [["firm", "Clrng Firm"], ["account", "Acct ID"], ["account_type", "Acct Type"], ["class_group", "Class Grp"],
    ["symbol", "Symbol"], ["security_type", "Type"], ["exchange", "Exchange"], ["series_date", "Ser/Ctr Date", "date"],
    ["expiration_date", "Exp Date", "date"], ["strike", "Strike", "strike"], ["put_call", "C/P"], ["quantity", "Qty"],
    ["basket_id", "Bskt ID"], ["nav", "NAV", "money"], ["minimum", "Minimum", "money"]],
};
TAB_COLUMNS.baskets = TAB_COLUMNS.contracts;

function passes(row, f) {
  for (const [k, v] of Object.entries(f)) {
    if (!v || row[k] === undefined) continue;
    if (k === "strike") { if (Math.abs(Number(row.strike) - Number(v)) > 1e-6) return false; continue; }
    if (String(row[k]).toUpperCase() !== v.toUpperCase()) return false;
  }
  return true;
}

function openTab(tab) {
  state.tab = tab;
  for (const b of document.querySelectorAll("[role=tab]")) {
    b.setAttribute("aria-selected", String(b.dataset.tab === tab));
  }
  renderResults();
}

function renderResults() {
  const r = state.report;
  if (!r) return;
  const c = r.counts;
  const total = r.firms.reduce((s, f) => s + f.requirement, 0);
  $("#results-summary").textContent = `P&L set ${fmtDate(r.theo_date)} · ${c.accepted} accepted, ${c.rejected} rejected, ` +
    `${c.invalid_series} invalid series, ${c.warnings} warnings · requirement ${fmtMoney(total)}`;
  const f = formValues($("#results-filter"));
  const rows = resultRows(state.tab).filter((row) => passes(row, f));
  const cols = TAB_COLUMNS[state.tab];
  const withPnl = state.tab !== "accounts";
  const table = $("#results-table");
  head(table, ["#", ...cols.map((x) => x[1]), ...(withPnl ? POINTS : [])]);
  const tbody = table.tBodies[0];
  tbody.textContent = "";
  let first = null;
  rows.forEach((row, i) => {
    const tr = document.createElement("tr");
    cell(tr, i + 1, "num");
    for (const [k, , kind] of cols) {
      const v = row[k];
      if (kind === "money") cell(tr, fmtMoney(v), "num");
      else if (kind === "date") cell(tr, fmtDate(v));
      else if (kind === "strike") cell(tr, fmtStrike(v), "num");
      else cell(tr, v);
    }
    if (withPnl) for (const v of row.pnl || []) cell(tr, fmtMoney(v), v < 0 ? "num neg" : "num");
    if (row.unit || row.total) tr.classList.add("unit");
    tr.addEventListener("click", () => selectResult(tr, row));
    tbody.appendChild(tr);
    // the chart opens on the first total row (else the first row with a P&L)
    if (row.pnl && (!first || (!first[2] && /Total/.test(row.label || "")))) {
      first = [tr, row, /Total/.test(row.label || "")];
    }
  });
  if (first) selectResult(first[0], first[1]); else drawChart(null);
  const problems = $("#problems-box");
  problems.hidden = !r.problems.length;
  if (r.problems.length) renderProblems($("#problems-table"), r.problems);
}

function selectResult(tr, row) {
  for (const el of tr.parentNode.querySelectorAll("tr.selected")) el.classList.remove("selected");
  tr.classList.add("selected");
  if (state.tab === "contracts" && row.basket_id) {
    state.basket = { id: row.basket_id, firm: row.firm, account: row.account };
    const tab = document.querySelector("[data-tab=baskets]");
    tab.disabled = false;
    tab.textContent = `Basket Details (${row.basket_id})`;
  }
  drawChart(row);
}

function drawChart(row) {
  const svg = $("#chart");
  svg.textContent = "";
  const title = $("#chart-title");
  if (!row || !row.pnl) { title.textContent = "Select a row to see its P&L at the −5…+5 points"; return; }
  const what = [row.firm && `firm ${row.firm}`, row.account && `account ${row.account}`, row.portfolio_group,
    row.product_group && `prod grp ${row.product_group}`, row.class_group && `class grp ${row.class_group}`,
    row.symbol, row.label && row.label !== row.symbol && row.label !== row.class_group ? row.label : ""].filter(Boolean);
  title.textContent = `P&L of ${what.join(" · ")}`;
  const ns = "http://www.w3.org/2000/svg";
  const W = 640, H = 240, left = 70, right = 10, top = 14, bottom = 28;
  const vals = row.pnl.map(Number);
  const max = Math.max(0, ...vals), min = Math.min(0, ...vals);
  const span = max - min || 1;
  const y = (v) => top + ((max - v) / span) * (H - top - bottom);
  const slot = (W - left - right) / vals.length;
  const el = (name, attrs, text) => {
    const e = document.createElementNS(ns, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.appendChild(e);
    return e;
  };
  for (const v of [max, 0, min]) {
    el("line", { x1: left, x2: W - right, y1: y(v), y2: y(v), class: v === 0 ? "axis" : "gridline" });
    el("text", { x: left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, fmtMoney(v));
  }
  vals.forEach((v, i) => {
    const x = left + i * slot + slot * 0.15;
    const h = Math.abs(y(v) - y(0));
    el("rect", { x, y: Math.min(y(v), y(0)), width: slot * 0.7, height: Math.max(h, 1), class: v < 0 ? "bar loss" : "bar gain" });
    el("text", { x: x + slot * 0.35, y: H - 10, class: "tick", "text-anchor": "middle" }, POINTS[i]);
  });
}

async function exportResults(part, format) {
  try {
    const q = new URLSearchParams({ part, format });
    if (state.theoDate) q.set("theo_date", state.theoDate);
    const res = await api(`/api/v1/margin/export?${q}`, {
      method: "POST", body: { positions: state.reportPositions.map(apiRow) }, raw: true,
    });
    download(`margin-${part}-${state.report.theo_date}.${format}`, await res.blob());
  } catch (err) { say(describe(err)); }
}

// -- wiring ---------------------------------------------------------------------------------

function wire() {
  for (const b of document.querySelectorAll("[data-fold]")) {
    b.addEventListener("click", () => {
      const target = document.getElementById(b.dataset.fold);
      target.hidden = !target.hidden;
      b.setAttribute("aria-expanded", String(!target.hidden));
    });
  }
  $("#contract-filter").addEventListener("submit", (e) => { e.preventDefault(); searchContracts(); });
  $("#contracts-reset").addEventListener("click", () => {
    const select = $("#f-theo-date");
    const keep = select.value;
    $("#contract-filter").reset();
    select.value = keep; // Reset keeps the P&L file date
  });
  for (const name of ["product_group", "class_group", "underlying", "symbol"]) {
    const input = document.querySelector(`#contract-filter [name=${name}]`);
    input.addEventListener("input", () => suggest(input));
  }
  $("#f-theo-date").addEventListener("change", (e) => { state.theoDate = e.target.value; });
  $("#add-selected").addEventListener("click", addSelectedContracts);
  $("#position-filter").addEventListener("submit", filterPositions);
  $("#positions-reset").addEventListener("click", () => {
    $("#position-filter").reset();
    state.visible = null;
    renderPositions();
  });
  $("#submit").addEventListener("click", submit);
  $("#modify").addEventListener("click", openModify);
  $("#modify-apply").addEventListener("click", applyModify);
  $("#add-stock").addEventListener("click", () => {
    $("#stock-form").reset();
    $("#stock-error").hidden = true;
    $("#stock-dialog").showModal();
  });
  $("#stock-save").addEventListener("click", saveStock);
  $("#delete-selected").addEventListener("click", () => askDelete(false));
  $("#delete-all").addEventListener("click", () => askDelete(true));
  $("#delete-yes").addEventListener("click", confirmDelete);
  $("#upload").addEventListener("change", (e) => uploadFile(e.target));
  $("#upload-accept").addEventListener("click", acceptUpload);
  $("#upload-reject").addEventListener("click", () => { state.upload = null; });
  $("#upload-log").addEventListener("click", errorLog);
  $("#save-csv").addEventListener("click", () => savePositions("csv"));
  $("#save-ascii").addEventListener("click", () => savePositions("ascii"));
  $("#show-positions").addEventListener("click", () => showView("positions"));
  $("#show-results").addEventListener("click", () => showView("results"));
  for (const b of document.querySelectorAll("[role=tab]")) b.addEventListener("click", () => openTab(b.dataset.tab));
  $("#results-filter").addEventListener("submit", (e) => { e.preventDefault(); renderResults(); });
  $("#results-reset").addEventListener("click", () => { $("#results-filter").reset(); renderResults(); });
  for (const b of document.querySelectorAll("[data-export]")) {
    b.addEventListener("click", () => exportResults(b.dataset.export, b.dataset.format));
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  wire();
  renderPositions();
  try { await loadSets(); } catch (err) { say(describe(err)); }
  document.body.dataset.ready = "true";
});
