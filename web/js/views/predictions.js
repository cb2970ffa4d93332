// Predictions: run an inference job for a day, then the model's predictions against the targets for a stock,
// its MAE beside predicting zero, the error of every stock, and the per-day MAE of every stored inference.

import { getAll } from "../api.js";
import { busy, runJob } from "../jobs.js";
import * as store from "../store.js";
import { $, chart, clearChart, el, errorText, fillSelect, fmt, line, PALETTE, secondsAxis } from "../ui.js";

const CHARTS = ["p-mae", "p-series", "p-stocks"];
let setHash = () => {};
const rowsCache = new Map(); // inference id -> prediction rows (a stored inference never changes)

function message(text, kind = "warn") {
  const box = $("#p-message");
  box.hidden = !text;
  box.textContent = text || "";
  box.className = `message ${kind === "error" ? "error" : ""}`;
}

async function predictionRows(inference) {
  if (!rowsCache.has(inference.id)) rowsCache.set(inference.id, await getAll(`/model-inferences/${inference.id}/predictions`));
  return rowsCache.get(inference.id);
}

function mae(pairs) {
  const scored = pairs.filter(([, t]) => t !== null && t !== undefined);
  if (!scored.length) return null;
  return scored.reduce((sum, [p, t]) => sum + Math.abs(p - t), 0) / scored.length;
}

function drawScore(inference, rows) {
  const model = inference.mae ?? mae(rows.map((r) => [r.prediction, r.target]));
  const zero = inference.zero_mae ?? mae(rows.map((r) => [0, r.target]));
  const box = $("#p-score");
  if (model === null) {
    box.replaceChildren(el("div", { class: "lbl", text: `Day ${inference.date_id}'s targets are not known yet, so the predictions cannot be scored.` }));
    clearChart("p-mae", "empty", "No targets yet.");
    return;
  }
  const better = zero !== null && model < zero;
  box.replaceChildren(
    el("div", {}, el("div", { class: `big ${better ? "better" : "worse"}`, text: fmt(model, 3) }), el("div", { class: "lbl", text: "model MAE (bps)" })),
    el("div", {}, el("div", { class: "big", text: fmt(zero, 3) }), el("div", { class: "lbl", text: "predicting zero" })),
    zero ? el("div", {}, el("div", { class: "big", text: `${fmt((100 * (zero - model)) / zero, 1)} %` }), el("div", { class: "lbl", text: "lower than zero" })) : "",
  );
  chart("p-mae", {
    type: "bar",
    data: { labels: ["model", "zero"], datasets: [{ label: "MAE", data: [model, zero], backgroundColor: [PALETTE.model, PALETTE.zero] }] },
    options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, title: { display: true, text: "MAE (bps)" } } } },
  });
}

function drawSeries(rows, stockId, dateId) {
  const mine = rows.filter((r) => r.stock_id === stockId).sort((a, b) => a.seconds_in_bucket - b.seconds_in_bucket);
  if (!mine.length) return clearChart("p-series", "error", `Stock ${stockId} has no predictions on day ${dateId}.`);
  const hasTargets = mine.some((r) => r.target !== null && r.target !== undefined);
  chart("p-series", {
    type: "line",
    data: {
      labels: mine.map((r) => r.seconds_in_bucket),
      datasets: [
        line("prediction", mine.map((r) => r.prediction), PALETTE.model, { borderWidth: 2.4 }),
        hasTargets ? line("target", mine.map((r) => r.target ?? null), PALETTE.target, { borderWidth: 1.4, pointRadius: 2 }) : null,
      ].filter(Boolean),
    },
    options: {
      plugins: { title: { display: !hasTargets, text: "targets not known yet: predictions only" } },
      scales: { x: secondsAxis, y: { title: { display: true, text: "bps against the index, next 60 s" } } },
    },
  });
}

function drawStocks(rows, dateId) {
  const byStock = new Map();
  for (const r of rows) {
    if (r.target === null || r.target === undefined) continue;
    const s = byStock.get(r.stock_id) || { model: 0, zero: 0, n: 0 };
    s.model += Math.abs(r.prediction - r.target);
    s.zero += Math.abs(r.target);
    s.n += 1;
    byStock.set(r.stock_id, s);
  }
  if (!byStock.size) return clearChart("p-stocks", "empty", `Day ${dateId}'s targets are not known yet: no errors to show.`);
  const ids = [...byStock.keys()].sort((a, b) => a - b);
  chart("p-stocks", {
    type: "bar",
    data: {
      labels: ids,
      datasets: [
        { label: "model MAE", data: ids.map((i) => byStock.get(i).model / byStock.get(i).n), backgroundColor: PALETTE.model },
        { label: "zero MAE", data: ids.map((i) => byStock.get(i).zero / byStock.get(i).n), backgroundColor: "#c9d1d9" },
      ],
    },
    options: { scales: { x: { title: { display: true, text: "stock_id" }, ticks: { maxTicksLimit: 25 } }, y: { beginAtZero: true, title: { display: true, text: "MAE (bps)" } } } },
  });
}

function drawDays(inferences, modelIds) {
  const scored = inferences.filter((i) => typeof i.mae === "number" && modelIds.has(i.model_id));
  if (!scored.length) return clearChart("p-days", "empty", "No scored inference for this model's chain yet.");
  const byDay = new Map();
  for (const i of scored) byDay.set(i.date_id, i);
  const days = [...byDay.keys()].sort((a, b) => a - b);
  chart("p-days", {
    type: "line",
    data: {
      labels: days,
      datasets: [
        line("model", days.map((d) => byDay.get(d).mae), PALETTE.model, { pointRadius: 3 }),
        line("predicting zero", days.map((d) => byDay.get(d).zero_mae ?? null), PALETTE.zero, { borderDash: [5, 4], pointRadius: 2 }),
      ],
    },
    options: { scales: { x: { title: { display: true, text: "date_id" } }, y: { title: { display: true, text: "MAE (bps)" } } } },
  });
}

function chainIds(model, byId) {
  const ids = new Set();
  for (let m = model; m && !ids.has(store.modelId(m)); m = byId.get(m.parent_id)) ids.add(store.modelId(m));
  // and every descendant, so a walk forward of daily updates shows whole
  let grew = true;
  while (grew) {
    grew = false;
    for (const m of byId.values()) if (ids.has(m.parent_id) && !ids.has(store.modelId(m))) grew = ids.add(store.modelId(m));
  }
  return ids;
}

export async function show(params) {
  message(null);
  for (const id of [...CHARTS, "p-days"]) clearChart(id, "loading", "Loading…");
  $("#p-score").replaceChildren();
  const [models, days, inferences] = await Promise.all([store.models(), store.days(), store.inferences()]);
  if (!models.length) {
    for (const id of [...CHARTS, "p-days"]) clearChart(id, "empty", "No model yet.");
    fillSelect($("#p-model"), []);
    $("#p-run").disabled = true;
    message("No model is registered yet: train one in Models first.");
    return;
  }
  const byId = new Map(models.map((m) => [store.modelId(m), m]));
  const wantedModel = params.get("model");
  if (wantedModel !== null && !byId.has(Number(wantedModel))) {
    message(`Unknown model “${wantedModel}”: the registry has no such id.`, "error");
  }
  const model = byId.get(Number(wantedModel)) || store.latestModel(models);
  const modelId = store.modelId(model);
  fillSelect($("#p-model"), [...models].reverse().map((m) => [store.modelId(m), `#${store.modelId(m)} ${m.name ?? m.model_name} v${m.version}`]), modelId);
  fillSelect($("#p-date"), [...days].reverse().map((d) => [d.date_id, `${store.dayLabel(d)}${d.has_target ? "" : " (no targets yet)"}`]));
  drawDays(inferences, chainIds(model, byId));
  $("#p-run").disabled = busy("inference") || !days.length;

  const mine = inferences.filter((i) => i.model_id === modelId);
  const wantedDate = params.get("date");
  let dateId;
  if (wantedDate !== null) {
    if (!days.some((d) => String(d.date_id) === wantedDate)) {
      for (const id of CHARTS) clearChart(id, "error", `Unknown date ${wantedDate}`);
      message(`Unknown date “${wantedDate}”: no snapshots are stored for it, so there is nothing to predict.`, "error");
      return;
    }
    dateId = Number(wantedDate);
  } else {
    dateId = mine.length ? mine[mine.length - 1].date_id : days.find((d) => d.date_id > (model.last_trained_date_id ?? -1))?.date_id ?? days[days.length - 1]?.date_id;
  }
  fillSelect($("#p-date"), [...days].reverse().map((d) => [d.date_id, `${store.dayLabel(d)}${d.has_target ? "" : " (no targets yet)"}`]), dateId);
  const inference = [...mine].reverse().find((i) => i.date_id === dateId);
  if (!inference) {
    for (const id of CHARTS) clearChart(id, "empty", `Not predicted yet.`);
    fillSelect($("#p-stock"), []);
    message(`Model #${modelId} has not predicted day ${dateId} yet: press “Predict this day”.`);
    return;
  }
  const rows = await predictionRows(inference);
  if (!rows.length) {
    for (const id of CHARTS) clearChart(id, "empty", "This inference has no rows.");
    return;
  }
  const stocks = [...new Set(rows.map((r) => r.stock_id))].sort((a, b) => a - b);
  const wantedStock = params.get("stock");
  const stockId = Number(fillSelect($("#p-stock"), stocks.map((s) => [s, `stock ${s}`]), wantedStock ?? stocks[0]));
  drawScore(inference, rows);
  if (wantedStock !== null && !stocks.map(String).includes(wantedStock)) {
    clearChart("p-series", "error", `Unknown stock ${wantedStock}`);
    message(`Unknown stock “${wantedStock}”: no predictions for it on day ${dateId}.`, "error");
  } else drawSeries(rows, stockId, dateId);
  drawStocks(rows, dateId);
}

function navigateFromControls(withStock = true) {
  const query = new URLSearchParams({ model: $("#p-model").value, date: $("#p-date").value });
  if (withStock && $("#p-stock").value) query.set("stock", $("#p-stock").value);
  setHash(`predictions?${query}`);
}

async function run() {
  const slot = $("#p-job");
  const modelId = Number($("#p-model").value);
  const dateId = Number($("#p-date").value);
  $("#p-run").disabled = true;
  try {
    const job = await runJob(slot, { kind: "inference", model_id: modelId, date_id: dateId });
    store.invalidate("inferences");
    if (job.status === "succeeded") navigateFromControls();
  } catch (error) {
    message(errorText(error), "error");
  } finally {
    $("#p-run").disabled = false;
  }
}

export function init(navigate) {
  setHash = navigate;
  $("#p-model").addEventListener("change", () => navigateFromControls(false));
  $("#p-date").addEventListener("change", () => navigateFromControls(false));
  $("#p-stock").addEventListener("change", () => navigateFromControls(true));
  $("#p-run").addEventListener("click", run);
  $("#p-form").addEventListener("submit", (event) => event.preventDefault());
}
