// The caller's own trading: results, the realized P&L curve, open positions (close by hand),
// orders (cancel while open on the exchange) and the trade log, all through trading-activity.

import { lineChart } from "../chart.js";
import { empty, h, replace } from "../dom.js";
import { num, pct, pnlClass, price, signed, time } from "../format.js";

const CANCELLABLE = new Set(["placed", "partially_filled"]);

function card(label, value, { id, cls } = {}) {
  return h("div", { class: "card" }, h("div", { class: "label", text: label }), h("div", { class: ["value", cls], id, text: value }));
}

function table(id, headers, rows) {
  return h(
    "div",
    { class: "table-wrap" },
    h("table", { class: "table", id }, h("thead", {}, h("tr", {}, headers.map((t) => h("th", { text: t })))), h("tbody", {}, rows)),
  );
}

export function tradingPage(root, app) {
  const summaryBox = h("div", { id: "trading-summary" }, h("p", { class: "muted", text: "Loading…" }));
  const chartBox = h("div", { id: "pnl-chart" });
  const positionsBox = h("div", { id: "positions" });
  const ordersBox = h("div", { id: "orders" });
  const logBox = h("div", { id: "trade-log" });
  const message = h("p", { class: "form-error", id: "trading-message", role: "alert" });
  let closed = false;

  async function exit(action, orderId, button) {
    button.disabled = true;
    message.textContent = "";
    message.className = "form-error";
    try {
      const result = await app.api.call("aitradex1-trade-executor", { action, order_id: orderId });
      message.className = "form-ok";
      message.textContent =
        result.outcome === "closed"
          ? `Position closed at ${price(result.exit_price)} (${result.exit_reason}); realized P&L ${signed(result.realized_pnl)} USDT.`
          : result.outcome === "cancelled"
            ? "Order cancelled."
            : "Close order sent; its fill is recorded as soon as the exchange reports it.";
      await refresh();
    } catch (err) {
      message.textContent = err.message;
      button.disabled = false;
    }
  }

  function renderSummary(s) {
    replace(
      summaryBox,
      h(
        "div",
        { class: "cards" },
        card("Realized P&L today", `${signed(s.realized_pnl_today)} USDT`, { id: "pnl-today", cls: pnlClass(s.realized_pnl_today) }),
        card("Realized P&L 7 days", `${signed(s.realized_pnl_7d)} USDT`, { cls: pnlClass(s.realized_pnl_7d) }),
        card("Realized P&L total", `${signed(s.realized_pnl_total)} USDT`, { id: "pnl-total", cls: pnlClass(s.realized_pnl_total) }),
        card("Fees paid", `${num(s.fees_paid, 4)} USDT`, { id: "fees-paid" }),
        card("Win rate", s.win_rate === null ? "no closes yet" : `${pct(s.win_rate)} (${s.wins}/${s.wins + s.losses})`),
        card("Open positions", String(s.open_positions)),
        card("Open risk", `${num(s.open_risk)} USDT`),
      ),
      s.open_positions_without_stop ? h("p", { class: "warn", text: `${s.open_positions_without_stop} open position(s) have no stop loss: their risk is unbounded.` }) : null,
    );
    const series = s.pnl_series || [];
    const points = series.map((p) => ({ t: Date.parse(p.closed_at), v: Number(p.cumulative_pnl) }));
    // The curve starts from what came before its first close (0 when the series holds every close).
    if (points.length) points.unshift({ t: points[0].t, v: points[0].v - Number(series[0].realized_pnl) });
    replace(chartBox, points.length ? lineChart(points, { title: "Cumulative realized P&L (USDT)" }) : empty("No closed positions yet: the curve starts with the first close."));
  }

  function renderPositions(list) {
    if (!list.positions.length) {
      replace(positionsBox, empty("No open positions."));
      return;
    }
    replace(
      positionsBox,
      table(
        "positions-table",
        ["Symbol", "Side", "Size", "Entry", "SL", "TP", "Last", "Unrealized", ""],
        list.positions.map((p) => {
          const button = h("button", { type: "button", class: "danger", dataset: { action: "close", orderId: p.order_id }, text: p.close_requested_at ? "Closing…" : "Close" });
          button.addEventListener("click", () => exit("close_position", p.order_id, button));
          return h(
            "tr",
            { dataset: { orderId: p.order_id } },
            h("td", { text: p.symbol }),
            h("td", { class: p.side === "Buy" ? "long" : "short", text: p.side }),
            h("td", { class: "num", text: p.size }),
            h("td", { class: "num", text: price(p.entry_price) }),
            h("td", { class: "num", text: price(p.stop_loss) }),
            h("td", { class: "num", text: price(p.take_profit) }),
            h("td", { class: "num", text: price(p.last_price) }),
            h("td", { class: ["num", pnlClass(p.unrealized_pnl)], title: p.price_unavailable_reason || "", text: p.unrealized_pnl === null ? "no price" : signed(p.unrealized_pnl) }),
            h("td", {}, button),
          );
        }),
      ),
    );
  }

  function renderOrders(page) {
    if (!page.orders.length) {
      replace(ordersBox, empty("No orders yet."));
      return;
    }
    replace(
      ordersBox,
      table(
        "orders-table",
        ["Requested", "Symbol", "Side", "Status", "Filled", "Avg price", "Fees", "Exit", "P&L", ""],
        page.orders.map((o) => {
          let action = null;
          if (CANCELLABLE.has(o.status)) {
            action = h("button", { type: "button", dataset: { action: "cancel", orderId: o.id }, text: "Cancel" });
            action.addEventListener("click", () => exit("cancel_order", o.id, action));
          }
          return h(
            "tr",
            { dataset: { orderId: o.id, status: o.status } },
            h("td", { text: time(o.requested_at) }),
            h("td", { text: o.symbol }),
            h("td", { class: o.side === "Buy" ? "long" : "short", text: o.side }),
            h("td", { title: o.status_reason || "" }, h("span", { class: "order-status", text: o.status }), o.status_reason ? h("div", { class: "muted small", text: o.status_reason }) : null),
            h("td", { class: "num", text: `${o.filled_qty} / ${o.qty}` }),
            h("td", { class: "num", text: price(o.avg_fill_price) }),
            h("td", { class: "num", text: num(o.fees, 4) }),
            h("td", { class: "num", text: o.exit_price === null ? "–" : `${price(o.exit_price)} ${o.exit_reason || ""}` }),
            h("td", { class: ["num", "order-pnl", pnlClass(o.realized_pnl)], text: o.realized_pnl === null ? "–" : signed(o.realized_pnl) }),
            h("td", {}, action),
          );
        }),
      ),
    );
  }

  function renderLog(page) {
    if (!page.trade_logs.length) {
      replace(logBox, empty("No trade-log events yet."));
      return;
    }
    replace(
      logBox,
      h(
        "ul",
        { class: "timeline", id: "trade-log-list" },
        page.trade_logs.map((e) =>
          h(
            "li",
            { class: `level-${e.level}`, dataset: { event: e.event } },
            h("div", { class: "when", text: `${time(e.created_at)} · ${e.level} · ${e.event}` }),
            h("div", { class: "log-message", text: e.message }),
          ),
        ),
      ),
    );
  }

  async function refresh() {
    const calls = await Promise.allSettled([
      app.api.call("trading-activity", { action: "summary" }),
      app.api.call("trading-activity", { action: "positions" }),
      app.api.call("trading-activity", { action: "orders", limit: 50 }),
      app.api.call("trading-activity", { action: "trade_logs", limit: 50 }),
    ]);
    if (closed) return;
    const boxes = [summaryBox, positionsBox, ordersBox, logBox];
    const renderers = [renderSummary, renderPositions, renderOrders, renderLog];
    calls.forEach((result, i) => {
      if (result.status === "fulfilled") renderers[i](result.value);
      else replace(boxes[i], h("p", { class: "error", text: result.reason.message }));
    });
  }

  root.append(
    h(
      "div",
      { class: "stack" },
      h("h1", { text: "Trading" }),
      message,
      h("section", { class: "panel" }, h("h2", { text: "Results (USDT, after fees)" }), summaryBox, h("h3", { text: "Realized P&L" }), chartBox),
      h("section", { class: "panel" }, h("h2", { text: "Open positions" }), positionsBox),
      h("section", { class: "panel" }, h("h2", { text: "Orders" }), ordersBox),
      h("section", { class: "panel" }, h("h2", { text: "Trade log" }), logBox),
    ),
  );
  refresh();
  return { refresh, unmount: () => (closed = true) };
}
