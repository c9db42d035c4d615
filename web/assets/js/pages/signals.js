// The live signal board: filters, the list, and the selected signal explained (levels, the score's
// stored components, the backtest's verdict on its algorithm) beside its candle chart.

import { candleChart } from "../chart.js";
import { empty, field, h, replace } from "../dom.js";
import { num, price, time, timeframe, timeframeMs } from "../format.js";

const ALGORITHMS = ["unirail_core", "quantum_ai"];
const TIMEFRAMES = ["1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M"];
const CHART_BARS_BEFORE = 90;
const CHART_BARS_AFTER = 30;

function select(name, options, anyLabel) {
  return h(
    "select",
    { name, id: `filter-${name}` },
    h("option", { value: "", text: anyLabel }),
    options.map(([value, label]) => h("option", { value, text: label })),
  );
}

export function riskReward(signal) {
  const risk = Math.abs(signal.entry_price - signal.stop_loss);
  const reward = Math.abs(signal.take_profit - signal.entry_price);
  return risk > 0 ? reward / risk : null;
}

function evidenceFor(evidence, signal) {
  const list = (evidence && evidence[signal.algorithm]) || [];
  return list.find((e) => e.timeframe === signal.timeframe) || null;
}

function evidenceBlock(item) {
  if (!item) {
    return h(
      "div",
      { class: "evidence", id: "signal-evidence", dataset: { edge: "unknown" } },
      h("strong", { text: "No backtest evidence for this algorithm at this timeframe." }),
      h("p", { class: "muted small", text: "Nothing has measured whether this score predicts anything here: treat it as unproven." }),
    );
  }
  const edge = Boolean(item.edge_shown);
  return h(
    "div",
    { class: ["evidence", edge ? "edge" : ""], id: "signal-evidence", dataset: { edge: edge ? "shown" : "not-shown" } },
    h("strong", { text: edge ? "Edge shown out of sample" : "No edge shown out of sample" }),
    item.pays ? h("span", { class: "badge long", text: " pays after fees " }) : h("span", { class: "badge short", text: " does not pay after fees " }),
    h("p", { text: item.verdict }),
    h(
      "p",
      { class: "muted small" },
      `Threshold ${num(item.threshold, 0)}, ${item.signals} signals, mean ${num(item.mean_r_net, 3)} R net `,
      `(random entries ${num(item.baseline_mean_r_net, 3)} R), ${item.out_of_sample_from} to ${item.out_of_sample_to}; `,
      `report of ${item.report_date}.`,
    ),
  );
}

function componentsTable(signal) {
  const entries = Object.entries(signal.components || {});
  if (!entries.length) return empty("This signal has no stored components.");
  const magnitudes = entries.map(([, v]) => (Number.isFinite(Number(v)) ? Math.abs(Number(v)) : 0));
  const max = Math.max(...magnitudes, 1e-9);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "table", id: "signal-components" },
      h("thead", {}, h("tr", {}, h("th", { text: "Component" }), h("th", { class: "num", text: "Contribution" }), h("th", { text: "" }))),
      h(
        "tbody",
        {},
        entries.map(([name, value], i) =>
          h(
            "tr",
            { dataset: { component: name } },
            h("td", { text: name }),
            h("td", { class: "num", text: value === null || typeof value === "object" ? "n/a" : num(value, 2) }),
            h("td", {}, h("meter", { min: 0, max: max, value: magnitudes[i], title: name })),
          ),
        ),
      ),
      h("tfoot", {}, h("tr", {}, h("th", { text: "Score" }), h("th", { class: "num", text: num(signal.score, 2) }), h("th", {}))),
    ),
  );
}

function levelCard(label, value, id) {
  return h("div", { class: "card" }, h("div", { class: "label", text: label }), h("div", { class: "value", id, text: value }));
}

export function signalsPage(root, app) {
  const filters = {
    algorithm: select("algorithm", ALGORITHMS.map((a) => [a, a]), "any algorithm"),
    timeframe: select("timeframe", TIMEFRAMES.map((t) => [t, timeframe(t)]), "any timeframe"),
    direction: select("direction", [["LONG", "LONG"], ["SHORT", "SHORT"]], "any direction"),
    min_score: h("input", { type: "number", name: "min_score", id: "filter-min_score", min: 0, max: 100, step: 1, placeholder: "0" }),
  };
  const status = h("p", { class: "muted small", id: "signals-status" });
  const list = h("div", { class: "signal-list", id: "signal-list" });
  const detail = h("div", { class: "panel stack", id: "signal-detail" }, empty("Select a signal to see its score and chart."));
  let signals = [];
  let evidence = {};
  let selectedId = null;
  let chartBox = null;
  let closed = false;

  const filterForm = h(
    "form",
    { class: "filters", id: "signal-filters" },
    field("Algorithm", filters.algorithm),
    field("Timeframe", filters.timeframe),
    field("Direction", filters.direction),
    field("Min score", filters.min_score),
  );
  filterForm.addEventListener("submit", (e) => e.preventDefault());
  filterForm.addEventListener("change", () => refresh());
  root.append(h("h1", { text: "Signals" }), filterForm, status, h("div", { class: "grid-2" }, h("div", { class: "panel" }, list), detail));

  function request() {
    const body = { action: "list", limit: 50 };
    for (const key of ["algorithm", "timeframe", "direction"]) if (filters[key].value) body[key] = filters[key].value;
    if (filters.min_score.value !== "") body.min_score = Number(filters.min_score.value);
    return body;
  }

  function renderList() {
    if (!signals.length) {
      replace(list, empty("No signals yet. They appear here as the scanner stores them."));
      return;
    }
    replace(
      list,
      signals.map((sig) =>
        h(
          "button",
          {
            type: "button",
            class: ["signal-row", sig.id === selectedId ? "selected" : ""],
            dataset: { signalId: sig.id },
            onclick: () => select_(sig.id),
          },
          h("span", { class: ["badge", sig.direction === "LONG" ? "long" : "short"], text: sig.direction }),
          h("span", { class: "sym", text: sig.symbol }),
          h("span", { class: "num", text: num(sig.score, 2) }),
          h("span", { class: "meta", text: `${sig.algorithm} · ${timeframe(sig.timeframe)} · ${time(sig.bar_time)} · ${sig.status}` }),
        ),
      ),
    );
  }

  async function loadChart(sig) {
    const box = chartBox;
    const tfMs = timeframeMs(sig.timeframe);
    const bar = Date.parse(sig.bar_time);
    try {
      const page = await app.api.call("signals-api", {
        action: "candles",
        symbol: sig.symbol,
        timeframe: sig.timeframe,
        limit: CHART_BARS_BEFORE + CHART_BARS_AFTER,
        end: new Date(bar + CHART_BARS_AFTER * tfMs).toISOString(),
      });
      if (closed || box !== chartBox) return;
      if (!page.candles.length) {
        replace(box, empty("No candles yet for this market."));
        return;
      }
      replace(
        box,
        candleChart(page.candles, {
          levels: { entry: sig.entry_price, sl: sig.stop_loss, tp: sig.take_profit },
          markTime: bar,
          title: `${sig.symbol} ${timeframe(sig.timeframe)} candles`,
        }),
        h("p", { class: "muted small", text: `${page.candles.length} candles from the ${page.environment} exchange; the shaded bar is the signal's.` }),
      );
    } catch (err) {
      if (box === chartBox) replace(box, h("p", { class: "error", text: `Chart: ${err.message}` }));
    }
  }

  function renderDetail(sig) {
    const rr = riskReward(sig);
    chartBox = h("div", { id: "signal-chart" }, h("p", { class: "muted", text: "Loading candles…" }));
    replace(
      detail,
      h("h2", {}, h("span", { class: ["badge", sig.direction === "LONG" ? "long" : "short"], text: sig.direction }), " ", h("span", { id: "signal-symbol", text: sig.symbol })),
      h("p", { class: "muted", text: `${sig.algorithm} · ${timeframe(sig.timeframe)} · bar ${time(sig.bar_time)} · status ${sig.status}` }),
      h(
        "div",
        { class: "levels" },
        levelCard("Entry", price(sig.entry_price), "signal-entry"),
        levelCard("Stop loss", price(sig.stop_loss), "signal-sl"),
        levelCard("Take profit", price(sig.take_profit), "signal-tp"),
        levelCard("R:R", rr === null ? "–" : `1 : ${num(rr, 2)}`, "signal-rr"),
        levelCard("Score", num(sig.score, 2), "signal-score"),
        levelCard("Expires", time(sig.expires_at), "signal-expiry"),
      ),
      chartBox,
      h("h3", { text: "Score components (as stored)" }),
      componentsTable(sig),
      h("h3", { text: "What the backtest found" }),
      evidenceBlock(evidenceFor(evidence, sig)),
    );
    loadChart(sig);
  }

  function select_(id) {
    selectedId = id;
    renderList();
    const sig = signals.find((x) => x.id === id);
    if (sig) renderDetail(sig);
  }

  async function refresh() {
    try {
      const page = await app.api.call("signals-api", request());
      if (closed) return;
      signals = page.signals || [];
      evidence = page.evidence || {};
      status.textContent = `${signals.length} signal(s), newest first · updated ${new Date().toLocaleTimeString()}`;
      status.classList.remove("error");
      renderList();
      const selected = signals.find((x) => x.id === selectedId);
      if (selected) loadChart(selected);
    } catch (err) {
      status.textContent = `Signals cannot be loaded: ${err.message}`;
      status.classList.add("error");
    }
  }

  refresh();
  return { refresh, unmount: () => (closed = true) };
}
