// The triage page (docs/api.md): lists the firing alerts from GET /alerts, sorted by the
// server (so a sort covers every alert, not just the rows loaded), and shows one alert's
// transaction from GET /transactions/... with the terminal's and the issuer's events side
// by side. Every value from the API is written with textContent, never as HTML.
"use strict";

const TOKEN_KEY = "debitwatch.token";
const PAGE_SIZE = 500;
const MAX_ROWS = 5000; // a triage list longer than this needs filters, not scrolling
// Column -> [sort when first clicked, the opposite]: most urgent first by default.
const SORTS = {
  severity: ["-severity", "severity"],
  at_risk: ["-at_risk", "at_risk"],
  deadline: ["deadline", "-deadline"],
};

const state = { sort: "-severity", selected: null };

function $(selector) {
  return document.querySelector(selector);
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

class Unauthorized extends Error {}

async function api(path) {
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = "Bearer " + token;
  const response = await fetch(path, { headers, cache: "no-store" });
  if (response.status === 401) throw new Unauthorized();
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(`${response.status} ${body.error || response.statusText}: ${body.detail || ""}`);
  }
  return body;
}

// Minor units to a display amount in the currency's own decimals (JPY 0, KWD 3...).
function money(minor, currency) {
  if (minor === null || minor === undefined) return "";
  if (!currency) return String(minor);
  try {
    const format = new Intl.NumberFormat(undefined, { style: "currency", currency });
    const digits = format.resolvedOptions().maximumFractionDigits;
    return format.format(minor / 10 ** digits);
  } catch (error) {
    return `${minor} ${currency} (minor units)`;
  }
}

// RFC 3339 UTC for people: to the minute in the list (the detail has the seconds), to
// the second in facts, to the millisecond in a timeline.
function minute(text) {
  return exactly(text).slice(0, 16);
}

function when(text) {
  return exactly(text).replace(/\.\d+$/, "");
}

function exactly(text) {
  return text ? text.replace("T", " ").replace("Z", "") : "";
}

function transactionPath(alert) {
  if (!alert.terminal_id || !alert.stan || !alert.transmitted_at) return null;
  return (
    "/transactions/" +
    [alert.terminal_id, alert.stan, alert.transmitted_at].map(encodeURIComponent).join("/")
  );
}

function showTokenForm(message) {
  const form = $("#token-form");
  form.hidden = false;
  $("#status").textContent = message;
  $("#token").focus();
}

async function loadAlerts() {
  $("#status").textContent = "Loading alerts…";
  const rows = [];
  let next = `/alerts?status=firing&sort=${encodeURIComponent(state.sort)}&limit=${PAGE_SIZE}`;
  let total = 0;
  let index = null;
  while (next && rows.length < MAX_ROWS) {
    const page = await api(next);
    rows.push(...page.alerts);
    total = page.total;
    index = page.index;
    next = page.next;
  }
  renderAlerts(rows);
  let status = `${total} firing alert${total === 1 ? "" : "s"}`;
  if (rows.length < total) status += ` (showing the first ${rows.length})`;
  status += `, sorted by ${state.sort}.`;
  if (index && !index.complete) status += " This worker is still reading the alerts topic.";
  if (index && index.evicted) status += ` ${index.evicted} old alerts were dropped from memory.`;
  $("#status").textContent = status;
}

function renderAlerts(alerts) {
  const body = $("#alerts tbody");
  body.replaceChildren();
  for (const alert of alerts) {
    const row = element("tr");
    row.dataset.alertId = alert.alert_id;
    row.tabIndex = 0;
    row.setAttribute("aria-selected", String(alert.alert_id === state.selected));
    const severity = element("td", alert.severity, `sev sev-${alert.severity}`);
    row.append(
      severity,
      element("td", alert.kind),
      element("td", alert.terminal_id || (alert.terminals || []).join(", ")),
      element("td", alert.merchant_id),
      element("td", money(alert.at_risk_minor, alert.issuer_currency || alert.currency), "money"),
      element("td", minute(alert.deadline), alert.deadline_passed ? "deadline overdue" : "deadline"),
      element("td", minute(alert.detected_at), "detected"),
      element("td", alert.probable_cause),
    );
    row.addEventListener("click", () => select(alert));
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter") select(alert);
    });
    body.append(row);
  }
  $("#empty").hidden = alerts.length > 0;
  for (const header of document.querySelectorAll("th[data-sort]")) {
    const [first, second] = SORTS[header.dataset.sort];
    let sort = "none";
    if (state.sort === first || state.sort === second) {
      sort = state.sort.startsWith("-") ? "descending" : "ascending";
    }
    header.setAttribute("aria-sort", sort);
  }
}

function fact(list, name, value) {
  if (value === null || value === undefined || value === "") return;
  list.append(element("dt", name), element("dd", value));
}

async function select(alert) {
  state.selected = alert.alert_id;
  for (const row of document.querySelectorAll("#alerts tbody tr")) {
    row.setAttribute("aria-selected", String(row.dataset.alertId === alert.alert_id));
  }
  const detail = $("#detail");
  detail.hidden = false;
  $("#detail-title").textContent = `${alert.kind} · ${alert.alert_id}`;
  $("#why").textContent = alert.explanation;
  const facts = $("#facts");
  facts.replaceChildren();
  fact(facts, "Severity", `${alert.severity} (score ${alert.score})`);
  fact(facts, "Probable cause", alert.probable_cause);
  fact(facts, "Money at risk", money(alert.at_risk_minor, alert.issuer_currency || alert.currency));
  fact(facts, "Terminal amount", money(alert.terminal_amount_minor, alert.currency));
  fact(facts, "Issuer amount", money(alert.issuer_amount_minor, alert.issuer_currency));
  fact(facts, "Deadline", alert.deadline && when(alert.deadline) + (alert.deadline_passed ? " (passed)" : ""));
  fact(facts, "Paid again", alert.paid_again ? "yes: the cardholder paid a second time" : null);
  fact(facts, "Detected (stream time)", when(alert.detected_at));
  fact(facts, "Card token", alert.card_token);
  const timeline = $("#timeline tbody");
  timeline.replaceChildren();
  $("#verdicts").replaceChildren();
  const path = transactionPath(alert);
  if (!path) {
    $("#timeline-note").textContent =
      "A terminal incident covers many transactions: it has no single timeline.";
    for (const feature of alert.incident_features || []) {
      fact(facts, feature.name, `${feature.value} (usually ${feature.usual})`);
    }
    return;
  }
  $("#timeline-note").textContent = "Loading the transaction…";
  try {
    const transaction = await api(path);
    if (state.selected !== alert.alert_id) return; // another alert was clicked meanwhile
    renderTransaction(transaction);
  } catch (error) {
    if (error instanceof Unauthorized) return showTokenForm("The token was refused.");
    $("#timeline-note").textContent = `The transaction could not be loaded: ${error.message}`;
  }
}

function describeEvent(event) {
  const cell = element("td");
  if (!event) return cell;
  let label = event.type;
  if (event.outcome) label += `: ${event.outcome}`;
  if (event.approved !== null && event.approved !== undefined) {
    label += event.approved ? ": approved" : ": declined";
  }
  cell.append(element("span", label, "event-type"));
  const details = [money(event.amount_minor, event.currency)];
  if (event.response_code) details.push(`code ${event.response_code}`);
  details.push(event.event_id);
  cell.append(element("div", details.join(" · "), "note"));
  return cell;
}

function renderTransaction(transaction) {
  const s = transaction.state;
  $("#why").textContent = transaction.why;
  $("#timeline-note").textContent =
    `${transaction.terminal_id} / STAN ${transaction.stan}, sent ${when(transaction.transmitted_at)}; ` +
    `merchant ${transaction.merchant_id}; net position ${money(s.net_position_minor, s.issuer_currency || s.terminal_currency)}; ` +
    `window ${s.judged ? "closed" : "closes"} ${when(s.window_closes_at)}.`;
  const body = $("#timeline tbody");
  body.replaceChildren();
  for (const row of transaction.timeline) {
    const line = element("tr");
    line.dataset.source = row.source;
    line.append(element("td", exactly(row.at), "time"), describeEvent(row.terminal), describeEvent(row.issuer));
    body.append(line);
  }
  const verdicts = $("#verdicts");
  verdicts.replaceChildren();
  for (const verdict of transaction.verdicts) {
    const item = element("li");
    let text = `${verdict.kind}: ${verdict.status}`;
    if (verdict.deadline_passed) text += " (past its deadline)";
    if (verdict.resolution) text += ` (${verdict.resolution})`;
    if (verdict.severity) text += `, ${verdict.severity}`;
    if (verdict.probable_cause) text += `, probable cause ${verdict.probable_cause}`;
    item.append(element("strong", text));
    if (verdict.explanation) item.append(element("div", verdict.explanation));
    verdicts.append(item);
  }
}

async function refresh() {
  try {
    await loadAlerts();
  } catch (error) {
    if (error instanceof Unauthorized) {
      showTokenForm(
        sessionStorage.getItem(TOKEN_KEY) ? "The token was refused." : "This worker needs an API token.",
      );
    } else {
      $("#status").textContent = `The alerts could not be loaded: ${error.message}`;
    }
  }
}

function init() {
  for (const header of document.querySelectorAll("th[data-sort]")) {
    header.querySelector("button").addEventListener("click", () => {
      const [first, second] = SORTS[header.dataset.sort];
      state.sort = state.sort === first ? second : first;
      refresh();
    });
  }
  $("#refresh").addEventListener("click", refresh);
  $("#token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("#token").value.trim());
    $("#token").value = "";
    $("#token-form").hidden = true;
    refresh();
  });
  refresh();
}

document.addEventListener("DOMContentLoaded", init);
