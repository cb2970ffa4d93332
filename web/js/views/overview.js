// Overview: the latest model, the latest inference, the days stored, the jobs; one click to train the next
// day or predict it (the page waits for the job, and offers nothing twice while it runs).

import { get } from "../api.js";
import { busy, describeJob, pendingJobs, renderJob, resultText, runJob } from "../jobs.js";
import * as store from "../store.js";
import { $, chart, clearChart, el, errorText, fmt, inlineState, line, PALETTE, when } from "../ui.js";

let next = { train: null, predict: null };

function statCard(id, big, sub, pairs = []) {
  const body = document.querySelector(`#${id} .body`);
  const parts = [
    el("div", { class: "big", text: big }),
    sub ? el("div", { class: "sub", text: sub }) : null,
    pairs.length ? el("dl", {}, pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })])) : null,
  ];
  body.replaceChildren(...parts.filter(Boolean));
}

function badge(status) {
  return el("span", { class: `badge ${status}`, text: status });
}

async function loadJobs() {
  const recentBox = $("#ov-recent");
  try {
    const [recent, pending] = await Promise.all([store.recentJobs(), pendingJobs()]);
    const shortWhen = (iso) => (new Date(iso).toDateString() === new Date().toDateString() ? new Date(iso).toLocaleTimeString() : when(iso));
    statCard("ov-jobs", `${pending.length}`, pending.length === 1 ? "job queued or running" : "jobs queued or running", [
      ["last job", recent.length ? `${recent[0].kind} · ${recent[0].status}` : "none yet"],
      ["failed (recent)", String(recent.filter((j) => j.status === "failed").length)],
    ]);
    if (!recent.length) {
      inlineState(recentBox, "empty", "No jobs yet. Train a model to start.");
    } else {
      recentBox.replaceChildren(
        el(
          "table",
          {},
          el("thead", {}, el("tr", {}, ["kind", "status", "what", "started", "outcome"].map((h) => el("th", { text: h })))),
          el(
            "tbody",
            {},
            recent.slice(0, 8).map((j) =>
              el(
                "tr",
                {},
                el("td", { text: j.kind }),
                el("td", {}, badge(j.status)),
                el("td", { class: "wrap", text: describeJob(j) }),
                el("td", { text: shortWhen(j.created_at) }),
                el("td", { class: "wrap", text: j.status === "failed" ? j.error || "failed" : j.status === "succeeded" ? resultText(j) : "" }),
              ),
            ),
          ),
        ),
      );
    }
    return pending;
  } catch (error) {
    statCard("ov-jobs", "?", errorText(error));
    inlineState(recentBox, "error", `Jobs could not be read: ${errorText(error)}`);
    return [];
  }
}

function curve(inferences) {
  const scored = inferences.filter((i) => typeof i.mae === "number");
  if (!scored.length) {
    clearChart("ov-curve", "empty", "No scored predictions yet: predict a day whose targets are known.");
    return;
  }
  const byDay = new Map();
  for (const i of scored) byDay.set(i.date_id, i); // the latest inference of each day
  const daysSorted = [...byDay.keys()].sort((a, b) => a - b);
  chart("ov-curve", {
    type: "line",
    data: {
      labels: daysSorted.map(String),
      datasets: [
        line("model", daysSorted.map((d) => byDay.get(d).mae), PALETTE.model, { pointRadius: 3 }),
        line("predicting zero", daysSorted.map((d) => byDay.get(d).zero_mae ?? null), PALETTE.zero, { borderDash: [5, 4], pointRadius: 2 }),
      ],
    },
    options: { scales: { x: { title: { display: true, text: "date_id" } }, y: { title: { display: true, text: "MAE (bps)" } } } },
  });
}

function updateButtons(pending) {
  const trainBtn = $("#ov-train");
  const predictBtn = $("#ov-predict");
  const runningTrain = busy("train") || pending.some((j) => j.kind === "train");
  const runningInfer = busy("inference") || pending.some((j) => j.kind === "inference");
  trainBtn.disabled = runningTrain || !next.train;
  predictBtn.disabled = runningInfer || !next.predict;
  trainBtn.textContent = next.train ? (next.latest ? `Train day ${next.train.date_id}` : `Train days up to ${next.train.date_id}`) : "Train next day";
  predictBtn.textContent = next.predict ? `Predict day ${next.predict.date_id}` : "Predict next day";
  const notes = [];
  if (runningTrain) notes.push("a training job is running");
  if (runningInfer) notes.push("an inference job is running");
  if (!next.train && next.reasonTrain) notes.push(next.reasonTrain);
  if (!next.predict && next.reasonPredict) notes.push(next.reasonPredict);
  $("#ov-action-note").textContent = notes.length ? `${notes.join(" · ")}.` : "";
}

export async function show() {
  for (const id of ["ov-model", "ov-inference", "ov-days", "ov-jobs"]) inlineState(document.querySelector(`#${id} .body`), "loading", "Loading…");
  clearChart("ov-curve", "loading", "Loading…");
  const [daysR, modelsR, infR] = await Promise.allSettled([store.days(), store.models(), store.inferences()]);
  const days = daysR.status === "fulfilled" ? daysR.value : null;
  const models = modelsR.status === "fulfilled" ? modelsR.value : null;
  const inferences = infR.status === "fulfilled" ? infR.value : null;
  if (!days && !models && !inferences) throw daysR.reason;

  if (days) {
    if (days.length) {
      const withTargets = days.filter((d) => d.has_target).length;
      statCard("ov-days", String(days.length), `${store.dayLabel(days[0])} → ${store.dayLabel(days[days.length - 1])}`, [["with targets", String(withTargets)]]);
    } else statCard("ov-days", "0", "No snapshots stored yet: replay a market onto the stream.");
  } else statCard("ov-days", "?", errorText(daysR.reason));

  const latest = models ? store.latestModel(models) : null;
  if (models) {
    if (latest) {
      const v = store.validation(latest);
      statCard("ov-model", `${latest.name ?? latest.model_name} v${latest.version}`, `#${store.modelId(latest)} · trained through day ${latest.last_trained_date_id ?? latest.date_id ?? "?"}`, [
        ["feature set", latest.feature_set || "—"],
        ["valid MAE", fmt(v.mae, 3)],
        ["zero MAE", fmt(v.zero, 3)],
        ["models", String(models.length)],
      ]);
    } else statCard("ov-model", "none", "No model yet: train one below or in Models.");
  } else statCard("ov-model", "?", errorText(modelsR.reason));

  if (inferences) {
    const last = inferences[inferences.length - 1];
    if (last) {
      const mae = typeof last.mae === "number" ? fmt(last.mae, 3) : "no targets yet";
      statCard("ov-inference", `day ${last.date_id}`, `model #${last.model_id} · ${last.n_rows} rows`, [
        ["MAE", mae],
        ["zero MAE", fmt(last.zero_mae, 3)],
        ["inferences", String(inferences.length)],
      ]);
    } else statCard("ov-inference", "none", "No predictions yet.");
    curve(inferences);
  } else {
    statCard("ov-inference", "?", errorText(infR.reason));
    clearChart("ov-curve", "error", errorText(infR.reason));
  }

  // the next steps: train the day after the latest model's last day (when its targets are known), skipping
  // days an update already tried and kept the parent for; predict the first later day it has not predicted
  next = { train: null, predict: null };
  const recent = await store.recentJobs().catch(() => []);
  if (days && models) {
    const through = latest ? latest.last_trained_date_id ?? latest.date_id : null;
    const after = days.filter((d) => through === null || through === undefined || d.date_id > through);
    if (!latest) {
      // a first model: every day with targets but the last, which is left to update or predict
      const withTargets = days.filter((d) => d.has_target);
      next.train = withTargets.length ? withTargets[Math.max(0, withTargets.length - 2)] : null;
      next.reasonTrain = next.train ? null : "no day with targets to train on";
      next.reasonPredict = "no model to predict with";
    } else {
      const id = store.modelId(latest);
      const kept = new Set(
        recent.filter((j) => j.kind === "train" && j.status === "succeeded" && j.result?.kept_parent && j.params?.parent_id === id).flatMap((j) => [j.params.date_id, j.params.end_date_id, j.params.up_to_date_id]),
      );
      const predicted = new Set((inferences || []).filter((i) => i.model_id === id).map((i) => i.date_id));
      next.train = after.find((d) => d.has_target && !kept.has(d.date_id)) || null;
      next.reasonTrain = next.train ? null : `no new day after ${through} with targets yet`;
      next.predict = after.find((d) => !predicted.has(d.date_id)) || null;
      next.reasonPredict = next.predict ? null : `model #${id} has predicted every later day`;
    }
    next.latest = latest;
  }
  const pending = await loadJobs();
  updateButtons(pending);
}

async function start(kind) {
  const slot = $("#ov-job");
  const latest = next.latest;
  const body =
    kind === "train"
      ? latest
        ? { kind: "train", model_name: latest.name ?? latest.model_name, parent_id: store.modelId(latest), date_id: next.train.date_id }
        : { kind: "train", model_name: "closecast", up_to_date_id: next.train.date_id }
      : { kind: "inference", model_id: store.modelId(latest), date_id: next.predict.date_id };
  updateButtons([{ kind }]);
  try {
    await runJob(slot, body);
  } catch {
    /* drawn in the slot */
  }
  store.invalidate("models", "inferences");
  setHash("overview");
}

let setHash = () => {};

export function init(navigate) {
  setHash = navigate;
  $("#ov-train").addEventListener("click", () => start("train"));
  $("#ov-predict").addEventListener("click", () => start("inference"));
}

export { renderJob };
