// What several views share, read once and refreshed on demand: the days with data, their trading dates, the
// stocks of a day, the models and the inferences.

import { get, getAll } from "./api.js";

const cache = new Map();

function once(key, load) {
  if (!cache.has(key)) {
    const promise = load().catch((error) => {
      cache.delete(key);
      throw error;
    });
    cache.set(key, promise);
  }
  return cache.get(key);
}

export function invalidate(...keys) {
  if (keys.length === 0) cache.clear();
  for (const key of keys) for (const k of [...cache.keys()]) if (k === key || k.startsWith(`${key}:`)) cache.delete(k);
}

// Days with snapshots: one row per day for the first stock at second 0 (the API has no distinct-days call),
// each with its trading date when a mapping exists. Sorted by date_id.
export function days() {
  return once("days", async () => {
    const first = await get("/stock_data/", { seconds_in_bucket: 0, page_size: 1 });
    if (first.total_results === 0) return [];
    const stockId = first.data[0].stock_id;
    const [rows, mappings] = await Promise.all([
      getAll("/stock_data/", { stock_id: stockId, seconds_in_bucket: 0 }),
      getAll("/date_mappings/").catch(() => []),
    ]);
    const dates = new Map(mappings.map((m) => [m.date_id, m.trading_date || m.date]));
    const ids = [...new Set(rows.map((r) => r.date_id))].sort((a, b) => a - b);
    return ids.map((id) => ({ date_id: id, date: dates.get(id) || null, has_target: rows.some((r) => r.date_id === id && r.target !== null && r.target !== undefined) }));
  });
}

export function dayLabel(day) {
  return day.date ? `${day.date_id} · ${day.date}` : `day ${day.date_id}`;
}

// The stocks present at second 0 of a day (the cross-section).
export function stocks(dateId) {
  return once(`stocks:${dateId}`, async () => {
    const rows = await getAll("/stock_data/", { date_id: dateId, seconds_in_bucket: 0 });
    return rows.map((r) => r.stock_id).sort((a, b) => a - b);
  });
}

export function modelId(m) {
  return m.id ?? m.model_id;
}

export function models() {
  return once("models", async () => {
    const rows = await getAll("/models/");
    return rows.sort((a, b) => modelId(a) - modelId(b));
  });
}

export function inferences() {
  return once("inferences", async () => {
    const rows = await getAll("/model-inferences/");
    return rows.sort((a, b) => a.id - b.id);
  });
}

export function latestModel(all) {
  return all.length ? all[all.length - 1] : null;
}

// The validation MAE of a model and of predicting zero on the same days, whatever the metrics' key names.
export function validation(model) {
  const m = model.metrics || {};
  const v = m.valid || m.validation || m.valid_metrics || m;
  const pick = (...keys) => {
    for (const key of keys) if (typeof v[key] === "number") return v[key];
    return null;
  };
  return { mae: pick("mae", "valid_mae"), zero: pick("zero_mae", "valid_zero_mae", "zero"), days: v.days || null };
}

export function daysTrained(model) {
  if (Array.isArray(model.days_trained)) return model.days_trained;
  return [];
}

// The newest jobs (not cached: they change while the page is open).
export async function recentJobs() {
  const body = await get("/jobs/", { page_size: 20 });
  return body.data;
}
