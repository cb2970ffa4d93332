// Models: the registry with its lineage drawn (SVG), one model's details, validation MAE along its parent
// chain, and a training job started and followed to its end.

import { busy, runJob } from "../jobs.js";
import * as store from "../store.js";
import { $, chart, clearChart, el, fillSelect, fmt, inlineState, PALETTE, when } from "../ui.js";

const SVG = "http://www.w3.org/2000/svg";
let selected = null;
let setHash = () => {};

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  for (const c of children) if (c) node.append(c);
  return node;
}

const parentOf = (m) => m.parent_id ?? null;

function chainOf(model, byId) {
  const chain = [];
  const seen = new Set();
  for (let m = model; m && !seen.has(store.modelId(m)); m = byId.get(parentOf(m))) {
    seen.add(store.modelId(m));
    chain.unshift(m);
  }
  return chain;
}

// Layout: depth (distance from its root) to the right; each root and each branch on its own row.
function layout(models) {
  const byId = new Map(models.map((m) => [store.modelId(m), m]));
  const children = new Map();
  for (const m of models) {
    const p = parentOf(m);
    if (p !== null && byId.has(p)) (children.get(p) || children.set(p, []).get(p)).push(m);
  }
  const roots = models.filter((m) => parentOf(m) === null || !byId.has(parentOf(m)));
  const pos = new Map();
  let row = 0;
  const place = (m, depth) => {
    pos.set(store.modelId(m), { x: depth, y: row });
    const kids = (children.get(store.modelId(m)) || []).sort((a, b) => store.modelId(a) - store.modelId(b));
    kids.forEach((k, i) => {
      if (i > 0) row += 1;
      place(k, depth + 1);
    });
  };
  for (const r of roots) {
    place(r, 0);
    row += 1;
  }
  return { byId, pos, rows: row };
}

function drawLineage(models) {
  const box = $("#m-lineage");
  if (!models.length) {
    inlineState(box, "empty", "No models yet. Start a training job below: a refit needs no parent.");
    return;
  }
  const { byId, pos, rows } = layout(models);
  const W = 150;
  const H = 46;
  const GX = 34;
  const GY = 16;
  const cols = Math.max(...[...pos.values()].map((p) => p.x)) + 1;
  const width = cols * (W + GX) + 20;
  const height = rows * (H + GY) + 20;
  const chain = new Set(selected ? chainOf(byId.get(selected), byId).map(store.modelId) : []);
  const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": "Model lineage: each model and the parent it came from" });
  const at = (id) => ({ x: 10 + pos.get(id).x * (W + GX), y: 10 + pos.get(id).y * (H + GY) });
  for (const m of models) {
    const p = parentOf(m);
    if (p === null || !byId.has(p)) continue;
    const a = at(p);
    const b = at(store.modelId(m));
    const onChain = chain.has(p) && chain.has(store.modelId(m));
    root.append(svg("path", { class: `edge ${onChain ? "chain" : ""}`, d: `M${a.x + W},${a.y + H / 2} C${a.x + W + GX / 2},${a.y + H / 2} ${b.x - GX / 2},${b.y + H / 2} ${b.x},${b.y + H / 2}` }));
  }
  for (const m of models) {
    const id = store.modelId(m);
    const { x, y } = at(id);
    const v = store.validation(m);
    const cls = `node ${id === selected ? "selected" : chain.has(id) ? "chain" : ""}`;
    const title = svg("title");
    title.textContent = `model #${id} ${m.name ?? m.model_name} v${m.version}${parentOf(m) ? `, from #${parentOf(m)}` : ", a refit"}`;
    const node = svg(
      "g",
      { class: cls, tabindex: 0, role: "button", "aria-pressed": id === selected, "data-model-id": id, transform: `translate(${x},${y})` },
      title,
      svg("rect", { width: W, height: H, rx: 8 }),
      svg("text", { x: 10, y: 19 }),
      svg("text", { x: 10, y: 36, class: "sub" }),
    );
    node.children[2].textContent = `#${id} ${m.name ?? m.model_name} v${m.version}`.slice(0, 22);
    node.children[3].textContent = `→ day ${m.last_trained_date_id ?? "?"} · MAE ${fmt(v.mae, 2)}`;
    const choose = () => select(id);
    node.addEventListener("click", choose);
    node.addEventListener("keydown", (e) => {
      if (e.key === "Enter" || e.key === " ") {
        e.preventDefault();
        choose();
      }
    });
    root.append(node);
  }
  box.replaceChildren(root);
  box.querySelector(`[data-model-id="${selected}"]`)?.scrollIntoView?.({ block: "nearest", inline: "nearest" });
}

function drawDetail(model, byId) {
  const box = $("#m-detail");
  if (!model) return inlineState(box, "empty", "Choose a model in the lineage or the registry.");
  const v = store.validation(model);
  const days = store.daysTrained(model);
  const params = model.params || {};
  const kv = [
    ["model", `#${store.modelId(model)} ${model.name ?? model.model_name} v${model.version}`],
    ["parent", parentOf(model) ? `#${parentOf(model)}` : "none (a refit)"],
    ["feature set", model.feature_set || "—"],
    ["days trained", days.length ? `${days.length} (${days[0]}–${days[days.length - 1]})` : model.last_trained_date_id !== undefined ? `through day ${model.last_trained_date_id}` : "—"],
    ["validation MAE", v.mae === null ? "—" : `${fmt(v.mae, 3)} (zero: ${fmt(v.zero, 3)})`],
    ["captured vs zero", v.mae !== null && v.zero ? `${fmt((100 * (v.zero - v.mae)) / v.zero, 1)} % lower` : "—"],
    ["artifact", model.artifact_uri || model.model_artifact_path || "—"],
    ["created", when(model.created_at)],
  ];
  const paramChips = Object.entries(params).slice(0, 16).map(([k, value]) => el("span", { class: "chip", text: `${k}=${typeof value === "object" ? JSON.stringify(value) : value}` }));
  box.replaceChildren(
    el("dl", { class: "kv" }, kv.flatMap(([k, value]) => [el("dt", { text: k }), el("dd", { text: value })]), el("dt", { text: "params" }), el("dd", {}, paramChips.length ? el("div", { class: "chips" }, paramChips) : "—")),
  );
  const chain = chainOf(model, byId);
  const scored = chain.map((m) => ({ m, v: store.validation(m) }));
  if (!scored.some((s) => s.v.mae !== null)) return clearChart("m-chain", "empty", "This model records no validation MAE.");
  chart("m-chain", {
    type: "bar",
    data: {
      labels: scored.map((s) => `#${store.modelId(s.m)} (through day ${s.m.last_trained_date_id ?? "?"})`),
      datasets: [
        { label: "validation MAE", data: scored.map((s) => s.v.mae), backgroundColor: PALETTE.model, maxBarThickness: 48 },
        { label: "predicting zero", data: scored.map((s) => s.v.zero), backgroundColor: "#c9d1d9", maxBarThickness: 48 },
      ],
    },
    options: { scales: { y: { beginAtZero: true, title: { display: true, text: "MAE (bps)" } } } },
  });
}

function drawTable(models) {
  const box = $("#m-table");
  if (!models.length) return inlineState(box, "empty", "The registry is empty.");
  const withDays = models.some((m) => store.daysTrained(m).length); // the listing may not carry the days
  box.replaceChildren(
    el(
      "table",
      {},
      el("thead", {}, el("tr", {}, ["id", "name", "version", "parent", "feature set", "trained through", withDays ? "days" : null, "valid MAE", "zero MAE", "created"].filter(Boolean).map((h) => el("th", { text: h })))),
      el(
        "tbody",
        {},
        [...models].reverse().map((m) => {
          const v = store.validation(m);
          const id = store.modelId(m);
          return el(
            "tr",
            { class: id === selected ? "selected" : "" },
            el("td", {}, el("button", { type: "button", class: "small", "aria-label": `show model ${id}`, onclick: () => select(id), text: `#${id}` })),
            el("td", { text: m.name ?? m.model_name }),
            el("td", { text: m.version }),
            el("td", { text: parentOf(m) ? `#${parentOf(m)}` : "—" }),
            el("td", { text: m.feature_set || "—" }),
            el("td", { text: m.last_trained_date_id ?? "—" }),
            withDays ? el("td", { class: "num", text: store.daysTrained(m).length || "—" }) : null,
            el("td", { class: "num", text: fmt(v.mae, 3) }),
            el("td", { class: "num", text: fmt(v.zero, 3) }),
            el("td", { text: when(m.created_at) }),
          );
        }),
      ),
    ),
  );
}

function select(id) {
  setHash(`models?model=${id}`);
}

function syncForm(models, days) {
  const dayOptions = days.filter((d) => d.has_target).map((d) => [d.date_id, store.dayLabel(d)]);
  const parentOptions = [["", "none — refit from scratch"], ...[...models].reverse().map((m) => [store.modelId(m), `#${store.modelId(m)} ${m.name ?? m.model_name} v${m.version} (→ day ${m.last_trained_date_id ?? "?"})`])];
  fillSelect($("#m-parent"), parentOptions, selected ?? "");
  const parent = models.find((m) => String(store.modelId(m)) === $("#m-parent").value);
  const afterParent = parent ? dayOptions.filter(([d]) => d > (parent.last_trained_date_id ?? -1)) : dayOptions;
  const usable = afterParent.length ? afterParent : dayOptions;
  fillSelect($("#m-start"), usable, usable[0]?.[0]);
  fillSelect($("#m-end"), usable, (parent ? usable[0] : usable[usable.length - 1])?.[0]);
  if (parent) $("#m-name").value = parent.name ?? parent.model_name;
  modeChanged();
  $("#m-train").disabled = busy("train") || !dayOptions.length;
  if (!dayOptions.length) inlineState($("#m-job"), "empty", "No day with targets is stored yet: nothing to train on.");
}

function modeChanged() {
  const mode = $("#m-mode").value;
  $("#m-start").disabled = mode !== "range";
  $("#m-start").previousElementSibling.textContent = mode === "range" ? "From" : "From (unused)";
  $("#m-end").previousElementSibling.textContent = mode === "date" ? "Day" : mode === "upto" ? "Up to" : "To";
}

let lastDays = [];
let lastModels = [];

export async function show(params) {
  inlineState($("#m-lineage"), "loading", "Loading the registry…");
  inlineState($("#m-detail"), "loading", "Loading…");
  clearChart("m-chain", "loading", "Loading…");
  const [models, days] = await Promise.all([store.models(), store.days()]);
  lastDays = days;
  lastModels = models;
  const wanted = params.get("model");
  const byId = new Map(models.map((m) => [store.modelId(m), m]));
  if (wanted !== null && !byId.has(Number(wanted))) {
    selected = store.latestModel(models) ? store.modelId(store.latestModel(models)) : null;
    drawLineage(models);
    inlineState($("#m-detail"), "error", `Unknown model “${wanted}”: the registry has no such id.`);
    clearChart("m-chain", "error", `Unknown model ${wanted}`);
  } else {
    selected = wanted !== null ? Number(wanted) : store.latestModel(models) ? store.modelId(store.latestModel(models)) : null;
    drawLineage(models);
    drawDetail(selected ? byId.get(selected) : null, byId);
    if (!selected) clearChart("m-chain", "empty", "No models yet.");
  }
  drawTable(models);
  syncForm(models, days);
}

async function train(event) {
  event.preventDefault();
  const name = $("#m-name").value.trim();
  const slot = $("#m-job");
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(name)) {
    inlineState(slot, "error", "The name may use letters, digits, “_”, “.” and “-” (1–100 characters).");
    $("#m-name").focus();
    return;
  }
  const body = { kind: "train", model_name: name };
  const parent = $("#m-parent").value;
  if (parent) body.parent_id = Number(parent);
  const mode = $("#m-mode").value;
  const end = Number($("#m-end").value);
  if (mode === "date") body.date_id = end;
  else if (mode === "upto") body.up_to_date_id = end;
  else {
    body.start_date_id = Number($("#m-start").value);
    body.end_date_id = end;
    if (body.start_date_id > end) {
      inlineState(slot, "error", "“From” must not be after “To”.");
      return;
    }
  }
  if ($("#m-features").value) body.feature_set = $("#m-features").value;
  $("#m-train").disabled = true;
  try {
    const job = await runJob(slot, body);
    store.invalidate("models");
    const id = job.result?.model_id;
    if (job.status === "succeeded" && id) setHash(`models?model=${id}`);
    else await show(new URLSearchParams(location.hash.split("?")[1] || ""));
  } catch {
    /* drawn in the slot */
  } finally {
    $("#m-train").disabled = false;
  }
}

export function init(navigate) {
  setHash = navigate;
  $("#m-train-form").addEventListener("submit", train);
  $("#m-mode").addEventListener("change", modeChanged);
  $("#m-parent").addEventListener("change", () => {
    const keep = $("#m-parent").value;
    selected = keep ? Number(keep) : null;
    syncForm(lastModels, lastDays);
  });
}
