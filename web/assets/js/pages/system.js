// The system's health as diagnostics tells anyone, and whether the operator has halted trading.

import { empty, h, replace } from "../dom.js";
import { time } from "../format.js";

export function systemPage(root, app) {
  const health = h("div", { id: "system-health" }, h("p", { class: "muted", text: "Loading…" }));
  const halt = h("div", { id: "system-halt" });
  const evidence = h("div", { id: "system-evidence" });
  let closed = false;

  function renderHealth(doc) {
    const checks = doc.checks || [];
    replace(
      health,
      h("p", {}, "Overall: ", h("span", { class: ["badge", doc.status], id: "system-status", text: doc.status }), ` · checked ${time(doc.checked_at)}`),
      checks.length
        ? h(
            "table",
            { class: "table" },
            h("tbody", {}, checks.map((c) => h("tr", {}, h("td", { text: c.name }), h("td", {}, h("span", { class: ["badge", c.status], text: c.status })), h("td", { text: c.message })))),
          )
        : h("p", { class: "muted small", text: "Each check's detail is for the operator (service role); this is the summary anyone sees." }),
    );
    const rows = Object.values(doc.evidence || {}).flat();
    replace(
      evidence,
      rows.length
        ? h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "table" },
              h("thead", {}, h("tr", {}, ["Algorithm", "Timeframe", "Edge shown", "Pays after fees", "Verdict"].map((t) => h("th", { text: t })))),
              h("tbody", {}, rows.map((e) => h("tr", {}, h("td", { text: e.algorithm }), h("td", { text: e.timeframe }), h("td", { text: e.edge_shown ? "yes" : "no" }), h("td", { text: e.pays ? "yes" : "no" }), h("td", { text: e.verdict })))),
            ),
          )
        : empty("No backtest evidence recorded yet."),
    );
  }

  function renderHalt(doc, state) {
    // Diagnostics says whether the kill switch is on; the executor's status adds its queue.
    const halted = doc && typeof doc.trading_halted === "boolean" ? doc.trading_halted : state && state.trading_halted;
    replace(
      halt,
      halted
        ? h("p", { class: "error", id: "trading-halted", dataset: { halted: "true" }, text: "Trading is halted by the operator: no new order is placed (exits and tracking go on)." })
        : h("p", { class: "ok", id: "trading-halted", dataset: { halted: "false" }, text: "Trading is running: new signals may be executed." }),
      state
        ? h("p", { class: "muted small", text: `Queue: ${state.pending_signals} new signal(s), ${state.processing_signals} in progress, ${state.requested_orders} order(s) awaiting the exchange, ${state.open_orders} open.` })
        : null,
    );
  }

  async function refresh() {
    const [doc, state] = await Promise.allSettled([
      app.api.call("diagnostics", { action: "check" }),
      app.api.call("aitradex1-trade-executor", { action: "status" }),
    ]);
    if (closed) return;
    if (doc.status === "fulfilled") renderHealth(doc.value);
    else replace(health, h("p", { class: "error", text: doc.reason.message }));
    const d = doc.status === "fulfilled" ? doc.value : null;
    const st = state.status === "fulfilled" ? state.value : null;
    if (d || st) renderHalt(d, st);
    else replace(halt, h("p", { class: "error", text: state.reason.message }));
  }

  root.append(
    h(
      "div",
      { class: "stack" },
      h("h1", { text: "System" }),
      h("section", { class: "panel" }, h("h2", { text: "Health" }), health),
      h("section", { class: "panel" }, h("h2", { text: "Trading" }), halt),
      h("section", { class: "panel" }, h("h2", { text: "What the backtest found, per algorithm" }), evidence),
    ),
  );
  refresh();
  return { refresh, unmount: () => (closed = true) };
}
