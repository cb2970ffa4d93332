// Small DOM, formatting and chart helpers shared by the views.

import { ApiDown, SignInRequired } from "./api.js";

export const $ = (selector) => document.querySelector(selector);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function fmt(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (typeof value !== "number") return String(value);
  if (Math.abs(value) >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (Math.abs(value) >= 1e4) return `${(value / 1e3).toFixed(0)}k`;
  return value.toFixed(digits);
}

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString();
}

export function duration(start, end) {
  if (!start) return "";
  const ms = (end ? new Date(end) : new Date()) - new Date(start);
  if (!(ms >= 0)) return "";
  return ms < 60_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

// A person-readable sentence for any error the API layer throws.
export function errorText(error) {
  if (error instanceof ApiDown || error instanceof SignInRequired) return error.message;
  return error?.message || String(error);
}

// Loading / empty / error overlay on a chart box (or inline in a plain container).
export function setState(box, kind, message) {
  if (typeof box === "string") box = document.getElementById(box);
  if (!box) return;
  box.querySelector(":scope > .state")?.remove();
  if (!kind) return;
  box.append(el("div", { class: `state ${kind}`, role: kind === "error" ? "alert" : "status", text: message }));
}

export function inlineState(container, kind, message) {
  container.replaceChildren(el("div", { class: `inline-state ${kind}`, role: kind === "error" ? "alert" : "status", text: message }));
}

export function fillSelect(select, options, selected) {
  const keep = selected ?? select.value;
  select.replaceChildren(...options.map(([value, label]) => el("option", { value: String(value), text: label })));
  const values = options.map(([value]) => String(value));
  if (keep !== undefined && keep !== null && values.includes(String(keep))) select.value = String(keep);
  return select.value;
}

export const PALETTE = {
  wap: "#1f6feb",
  bid: "#1a7f37",
  ask: "#c62828",
  reference: "#8250df",
  near: "#bf8700",
  far: "#6e7781",
  matched: "#0969da",
  imbalance: "#e16f24",
  model: "#1f6feb",
  zero: "#8c959f",
  target: "#17202c",
};

const charts = new Map();

// Draw (or redraw) a Chart.js chart on a canvas; returns the chart.
export function chart(canvasId, config) {
  const canvas = document.getElementById(canvasId);
  charts.get(canvasId)?.destroy();
  setState(canvas.parentElement, null);
  const base = {
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    interaction: { mode: "index", intersect: false },
    plugins: { legend: { position: "bottom", labels: { boxWidth: 12, boxHeight: 12, padding: 10 } } },
  };
  const made = new window.Chart(canvas, { ...config, options: deepMerge(base, config.options || {}) });
  charts.set(canvasId, made);
  return made;
}

export function clearChart(canvasId, kind, message) {
  charts.get(canvasId)?.destroy();
  charts.delete(canvasId);
  setState(document.getElementById(canvasId).parentElement, kind, message);
}

function deepMerge(a, b) {
  const out = { ...a };
  for (const [key, value] of Object.entries(b)) {
    out[key] = value && typeof value === "object" && !Array.isArray(value) && typeof a[key] === "object" ? deepMerge(a[key], value) : value;
  }
  return out;
}

export function line(label, data, color, extra = {}) {
  return { label, data, borderColor: color, backgroundColor: color, borderWidth: 1.8, pointRadius: 0, pointHoverRadius: 3, spanGaps: true, ...extra };
}

export const secondsAxis = { title: { display: true, text: "seconds into the auction" }, ticks: { maxTicksLimit: 12 } };
