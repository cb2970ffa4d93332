// Jobs: start one (POST /jobs/ with a client token, so a retried click starts nothing twice), then follow it
// to succeeded or failed, drawing its progress into a slot on the page.

import { get, post } from "./api.js";
import { duration, el, errorText } from "./ui.js";

const STEPS = ["queued", "running", "finished"];
const active = new Set(); // kinds with a job this page is waiting for

export function busy(kind) {
  return active.has(kind);
}

export function describeJob(job) {
  const p = job.params || {};
  if (job.kind === "train") {
    const days =
      p.date_id !== undefined ? `day ${p.date_id}` : p.up_to_date_id !== undefined ? `days up to ${p.up_to_date_id}` : `days ${p.start_date_id}–${p.end_date_id}`;
    return `Train ${p.model_name || "model"}${p.parent_id ? ` from #${p.parent_id}` : " (refit)"} on ${days}`;
  }
  if (job.kind === "inference") return `Predict day ${p.date_id} with model #${p.model_id}`;
  return `${job.kind} job`;
}

export function resultText(job) {
  const r = job.result || {};
  if (job.kind === "train") {
    const id = r.model_id ?? r.id ?? r.model?.id;
    const kept = r.kept_parent ? " (the update was not better: the parent was kept)" : "";
    return id ? `model #${id} registered${kept}` : "done";
  }
  if (job.kind === "inference") {
    const rows = r.n_rows ?? r.rows;
    const mae = r.mae !== undefined && r.mae !== null ? `, MAE ${Number(r.mae).toFixed(3)}` : "";
    return `${rows ?? "all"} rows predicted${mae}`;
  }
  return "done";
}

export function renderJob(slot, job, note) {
  const finished = job.status === "succeeded" || job.status === "failed";
  const index = finished ? 2 : STEPS.indexOf(job.status);
  const steps = STEPS.map((step, i) =>
    el("span", { class: `step ${i < index ? "done" : i === index ? "now" : ""}`, text: i === 2 && finished ? job.status : step }),
  );
  const detail = finished
    ? `${job.status === "succeeded" ? resultText(job) : "failed"} · ${duration(job.started_at || job.created_at, job.finished_at)}`
    : note || `job ${job.id.slice(0, 8)} · ${duration(job.created_at)}`;
  slot.replaceChildren(
    el(
      "div",
      { class: `job ${job.status}`, "data-job-id": job.id, "data-status": job.status, role: "status", "aria-live": "polite" },
      el("div", { class: "grow" }, el("div", { class: "what", text: describeJob(job) }), el("div", { class: "detail", text: detail }), job.status === "failed" ? el("div", { class: "reason", text: job.error || "the job failed without a reason" }) : null),
      el("div", { class: "steps" }, steps),
    ),
  );
}

function token() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

// Start a job and wait for its end; draws into `slot`; resolves with the finished job.
export async function runJob(slot, body) {
  const kind = body.kind;
  if (active.has(kind)) throw new Error(`A ${kind} job started here is still running; wait for it to finish.`);
  active.add(kind);
  try {
    const created = await post("/jobs/", { ...body, client_token: token() });
    let job = created.job || created;
    renderJob(slot, job);
    let wait = 700;
    while (job.status === "queued" || job.status === "running") {
      await new Promise((resolve) => setTimeout(resolve, wait));
      wait = Math.min(wait * 1.3, 3000);
      try {
        job = await get(`/jobs/${job.id}`);
        renderJob(slot, job);
      } catch (error) {
        renderJob(slot, job, `still waiting: ${errorText(error)}`);
      }
    }
    return job;
  } catch (error) {
    slot.replaceChildren(el("div", { class: "job failed", role: "alert" }, el("div", { class: "grow" }, el("div", { class: "what", text: `Could not start the ${kind} job` }), el("div", { class: "reason", text: errorText(error) }))));
    throw error;
  } finally {
    active.delete(kind);
  }
}

// Jobs queued or running on the server (started from anywhere).
export async function pendingJobs() {
  const [queued, running] = await Promise.all([get("/jobs/", { status: "queued", page_size: 100 }), get("/jobs/", { status: "running", page_size: 100 })]);
  return [...running.data, ...queued.data];
}
