// The marketing dashboard: reads /v1/dashboard for the filters' selection and draws it.
// No framework and no build step; charts are plain SVG bars.
"use strict";

const FILTERS = ["start", "end", "country", "product_line", "top"];
const money = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
const count = new Intl.NumberFormat("en-US");
const decimal = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const NUMBERS = { quantity: count, price_each: decimal, amount: decimal, order_number: null };
let pending = null;

const $ = (id) => document.getElementById(id);

function selection() {
  const params = new URLSearchParams();
  for (const name of FILTERS) {
    const value = $(name).value.trim();
    if (value !== "") params.set(name, value);
  }
  return params;
}

async function getJSON(url, signal) {
  const response = await fetch(url, { signal });
  const body = await response.json();
  if (!response.ok) throw new Error(body.hint ? `${body.message} ${body.hint}` : body.message);
  return body;
}

function fillSelect(select, values) {
  for (const value of values) select.append(new Option(value, value));
}

async function init() {
  try {
    const options = await getJSON("/v1/dashboard/options");
    fillSelect($("country"), options.countries);
    fillSelect($("product_line"), options.product_lines);
    $("start").value = options.first_date || "";
    $("end").value = options.last_date || "";
  } catch (error) {
    showError(error);
  }
  $("filters").addEventListener("change", update);
  $("filters").addEventListener("submit", (event) => { event.preventDefault(); update(); });
  await update();
}

async function update() {
  if (pending) pending.abort();
  const controller = (pending = new AbortController());
  const params = selection();
  const started = performance.now();
  document.body.dataset.state = "loading";
  try {
    const view = await getJSON(`/v1/dashboard?${params}`, controller.signal);
    render(view, params);
    const elapsed = Math.round(performance.now() - started);
    document.body.dataset.updateMs = String(elapsed);
    $("timing").textContent = `Updated in ${count.format(elapsed)} ms`;
    $("error").hidden = true;
  } catch (error) {
    if (error.name === "AbortError") return;
    showError(error);
  }
  document.body.dataset.state = "ready";
  document.body.dataset.renders = String(Number(document.body.dataset.renders) + 1);
}

function showError(error) {
  $("error").textContent = error.message;
  $("error").hidden = false;
}

function render(view, params) {
  const h = view.headline;
  figure("revenue", h.revenue, money);
  figure("orders", h.orders, count);
  figure("customers", h.customers, count);
  figure("average_order_value", h.average_order_value, money);
  $("empty").textContent = view.message || "";
  $("empty").hidden = !view.empty;
  $("top-label").textContent = $("top").value || "10";
  barChart($("top-products"), view.top_products);
  barChart($("sales-by-country"), view.sales_by_country);
  table(view.order_lines);
  $("csv").href = `/v1/dashboard/order-lines.csv?${params}`;
}

function figure(id, value, format) {
  const element = $(id);
  element.dataset.value = value === null ? "" : String(value);
  element.textContent = value === null ? "–" : format.format(value);
}

const SVG = "http://www.w3.org/2000/svg";

function svg(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

function barChart(chart, bars) {
  const rowHeight = 22, labelWidth = 230, valueWidth = 110, width = 580;
  const barSpace = width - labelWidth - valueWidth;
  const max = Math.max(0, ...bars.map((bar) => bar.value));
  chart.replaceChildren();
  chart.setAttribute("viewBox", `0 0 ${width} ${Math.max(1, bars.length) * rowHeight}`);
  bars.forEach((bar, i) => {
    const y = i * rowHeight;
    const length = max > 0 ? Math.max(1, (bar.value / max) * barSpace) : 0;
    const g = svg("g", { class: "bar", "data-label": bar.label, "data-value": String(bar.value) });
    const label = bar.label.length > 30 ? `${bar.label.slice(0, 29)}…` : bar.label;
    g.append(
      svg("title", {}, bar.group ? `${bar.label} (${bar.group})` : bar.label),
      svg("text", { x: labelWidth - 6, y: y + rowHeight / 2, "text-anchor": "end" }, label),
      svg("rect", { x: labelWidth, y: y + 3, width: length, height: rowHeight - 6 }),
      svg("text", { x: labelWidth + length + 6, y: y + rowHeight / 2 }, money.format(bar.value)),
    );
    chart.append(g);
  });
}

function table(lines) {
  const thead = $("rows").tHead, tbody = $("rows").tBodies[0];
  const header = document.createElement("tr");
  for (const name of lines.columns) header.append(Object.assign(document.createElement("th"), { textContent: name }));
  thead.replaceChildren(header);
  tbody.replaceChildren(...lines.rows.map((row) => {
    const tr = document.createElement("tr");
    row.forEach((value, i) => {
      const td = document.createElement("td");
      const format = NUMBERS[lines.columns[i]];
      if (format !== undefined) td.className = "number";
      td.textContent = value === null ? "" : format ? format.format(value) : String(value);
      tr.append(td);
    });
    return tr;
  }));
  $("rows-caption").textContent = lines.total > lines.shown
    ? `(first ${count.format(lines.shown)} of ${count.format(lines.total)}; the CSV has all)`
    : `(${count.format(lines.total)})`;
}

document.addEventListener("DOMContentLoaded", init);
