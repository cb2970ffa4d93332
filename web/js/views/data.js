// Data: one stock's auction over a day (prices, sizes, the book, the target) and the cross-section of every
// stock at one second.

import { getAll } from "../api.js";
import * as store from "../store.js";
import { $, chart, clearChart, errorText, fillSelect, line, PALETTE, secondsAxis } from "../ui.js";

const CHARTS = ["d-prices", "d-sizes", "d-book", "d-target", "d-cross"];
const SECONDS = Array.from({ length: 55 }, (_, i) => i * 10);
let setHash = () => {};

function message(text, kind = "warn") {
  const box = $("#data-message");
  box.hidden = !text;
  box.textContent = text || "";
  box.className = `message ${kind === "error" ? "error" : ""}`;
}

function drawStock(rows, dateId, stockId) {
  const labels = rows.map((r) => r.seconds_in_bucket);
  const col = (name) => rows.map((r) => r[name] ?? null);
  chart("d-prices", {
    type: "line",
    data: {
      labels,
      datasets: [
        line("WAP", col("wap"), PALETTE.wap, { borderWidth: 2.4 }),
        line("bid", col("bid_price"), PALETTE.bid),
        line("ask", col("ask_price"), PALETTE.ask),
        line("reference", col("reference_price"), PALETTE.reference, { borderDash: [6, 3] }),
        line("near", col("near_price"), PALETTE.near, { borderDash: [2, 2] }),
        line("far", col("far_price"), PALETTE.far, { borderDash: [8, 4] }),
      ],
    },
    options: { scales: { x: secondsAxis, y: { title: { display: true, text: "price (relative to the auction's start)" } } } },
  });
  chart("d-sizes", {
    type: "line",
    data: {
      labels,
      datasets: [
        line("matched size", col("matched_size"), PALETTE.matched),
        line("imbalance size", col("imbalance_size"), PALETTE.imbalance, { yAxisID: "y1" }),
      ],
    },
    options: {
      scales: {
        x: secondsAxis,
        y: { title: { display: true, text: "matched (shares)" } },
        y1: { position: "right", title: { display: true, text: "imbalance (shares)" }, grid: { drawOnChartArea: false } },
      },
    },
  });
  chart("d-book", {
    type: "line",
    data: { labels, datasets: [line("bid size", col("bid_size"), PALETTE.bid, { fill: false }), line("ask size", col("ask_size"), PALETTE.ask)] },
    options: { scales: { x: secondsAxis, y: { title: { display: true, text: "shares at the best price" } } } },
  });
  const targets = col("target");
  if (targets.every((t) => t === null)) {
    clearChart("d-target", "empty", `The targets of day ${dateId} are not known yet (they arrive after the close).`);
  } else {
    chart("d-target", {
      type: "bar",
      data: { labels, datasets: [{ label: `target, stock ${stockId}`, data: targets, backgroundColor: targets.map((t) => (t >= 0 ? "#2e9e55" : "#d1453b")) }] },
      options: { scales: { x: secondsAxis, y: { title: { display: true, text: "bps against the index, next 60 s" } } }, plugins: { legend: { display: false } } },
    });
  }
}

function measure(row, name) {
  if (name === "imbalance") return row.matched_size ? (100 * row.imbalance_buy_sell_flag * (row.imbalance_size ?? 0)) / row.matched_size : null;
  if (name === "wap_bps") return row.wap ? (row.wap - 1) * 1e4 : null;
  if (name === "spread_bps") return row.ask_price && row.bid_price ? ((row.ask_price - row.bid_price) / row.wap) * 1e4 : null;
  return row.target ?? null;
}

const MEASURE_LABEL = { imbalance: "signed imbalance / matched (%)", wap_bps: "WAP − 1 (bps)", spread_bps: "spread (bps)", target: "target (bps)" };

async function drawCross(dateId, second, name) {
  clearChart("d-cross", "loading", "Loading the cross-section…");
  const rows = await getAll("/stock_data/", { date_id: dateId, seconds_in_bucket: second });
  rows.sort((a, b) => a.stock_id - b.stock_id);
  const values = rows.map((r) => measure(r, name));
  if (!rows.length) return clearChart("d-cross", "empty", `No snapshots at second ${second} of day ${dateId}.`);
  if (values.every((v) => v === null)) return clearChart("d-cross", "empty", `No ${MEASURE_LABEL[name]} at second ${second} of day ${dateId} (targets not known yet?).`);
  chart("d-cross", {
    type: "bar",
    data: { labels: rows.map((r) => r.stock_id), datasets: [{ label: MEASURE_LABEL[name], data: values, backgroundColor: values.map((v) => (v >= 0 ? "#4c8df6" : "#e07a5f")) }] },
    options: {
      interaction: { mode: "nearest", intersect: true },
      plugins: { legend: { display: false }, title: { display: true, text: `${rows.length} stocks at second ${second} of day ${dateId}: ${MEASURE_LABEL[name]}` } },
      scales: { x: { title: { display: true, text: "stock_id" }, ticks: { maxTicksLimit: 25 } } },
    },
  });
}

export async function show(params) {
  message(null);
  for (const id of CHARTS) clearChart(id, "loading", "Loading…");
  const days = await store.days();
  if (!days.length) {
    for (const id of CHARTS) clearChart(id, "empty", "No snapshots stored yet.");
    message("No auction data is stored yet: replay a market onto the stream (closecast replay) and come back.");
    return;
  }
  const wantedDate = params.get("date");
  const known = days.find((d) => String(d.date_id) === wantedDate);
  const day = known || days[days.length - 1];
  fillSelect($("#data-date"), days.map((d) => [d.date_id, store.dayLabel(d)]).reverse(), day.date_id);
  const dateId = day.date_id;
  fillSelect($("#data-second"), SECONDS.map((s) => [s, `${s} s`]), params.get("second") || 0);
  if (wantedDate !== null && !known) {
    for (const id of CHARTS) clearChart(id, "error", `Unknown date ${wantedDate}`);
    message(`Unknown date “${wantedDate}”: no snapshots are stored for it. Days stored: ${days[0].date_id}–${days[days.length - 1].date_id}. Choose one above.`, "error");
    fillSelect($("#data-stock"), (await store.stocks(dateId)).map((s) => [s, `stock ${s}`]));
    return;
  }
  const stocks = await store.stocks(dateId);
  const wantedStock = params.get("stock");
  const stockKnown = wantedStock === null || stocks.map(String).includes(wantedStock);
  const stockId = fillSelect($("#data-stock"), stocks.map((s) => [s, `stock ${s}`]), wantedStock ?? stocks[0]);
  if (!stockKnown) {
    for (const id of CHARTS.slice(0, 4)) clearChart(id, "error", `Unknown stock ${wantedStock}`);
    message(`Unknown stock “${wantedStock}”: it has no snapshots on day ${dateId} (stocks ${stocks[0]}–${stocks[stocks.length - 1]}). Choose one above.`, "error");
  } else {
    const rows = await getAll("/stock_data/", { date_id: dateId, stock_id: stockId });
    rows.sort((a, b) => a.seconds_in_bucket - b.seconds_in_bucket);
    if (!rows.length) {
      for (const id of CHARTS.slice(0, 4)) clearChart(id, "empty", `No snapshots of stock ${stockId} on day ${dateId}.`);
    } else drawStock(rows, dateId, stockId);
  }
  try {
    await drawCross(dateId, Number($("#data-second").value), $("#data-measure").value);
  } catch (error) {
    clearChart("d-cross", "error", errorText(error));
  }
}

export function init(navigate) {
  setHash = navigate;
  const update = (resetStock) => {
    const query = new URLSearchParams({ date: $("#data-date").value, second: $("#data-second").value });
    if (!resetStock && $("#data-stock").value) query.set("stock", $("#data-stock").value);
    setHash(`data?${query}`);
  };
  $("#data-date").addEventListener("change", () => update(false));
  $("#data-stock").addEventListener("change", () => update(false));
  $("#data-second").addEventListener("change", () => update(false));
  $("#data-measure").addEventListener("change", () => update(false));
  $("#data-form").addEventListener("submit", (event) => event.preventDefault());
}
