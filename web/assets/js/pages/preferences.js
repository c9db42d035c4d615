// Every trading preference in one form; the server validates, and its messages show by each field.

import { field, h } from "../dom.js";

const ALGORITHMS = ["unirail_core", "quantum_ai"];
const TIMEFRAMES = ["1", "3", "5", "15", "30", "60", "120", "240", "360", "720", "D", "W", "M"];
const NUMBERS = [
  ["min_score", "Minimum score (0-100)", "Signals scoring below this are not traded for you."],
  ["risk_per_trade_pct", "Risk per trade (% of equity)", "What one stop-loss may cost, as a share of equity."],
  ["max_position_usd", "Maximum position (USD)", "The largest position value, whatever the risk allows."],
  ["leverage", "Leverage", "Capped by each market's own maximum."],
  ["max_open_positions", "Maximum open positions", null],
  ["daily_loss_limit_pct", "Daily loss limit (% of equity)", "No new trade today once realized losses reach this."],
];

function checks(name, values) {
  return h(
    "div",
    { class: "checks", id: `pref-${name}`, role: "group" },
    values.map((v) => h("label", {}, h("input", { type: "checkbox", name, value: v }), v)),
  );
}

function group(label, control, name) {
  return h(
    "div",
    { class: "field", dataset: { field: name } },
    h("span", { class: "label", text: label }),
    control,
    h("span", { class: "field-error", dataset: { errorFor: name } }),
  );
}

function symbols(text) {
  return text
    .split(/[\s,]+/)
    .map((x) => x.trim())
    .filter(Boolean);
}

export function preferencesPage(root, app) {
  const auto = h("input", { type: "checkbox", name: "auto_trade_enabled", id: "pref-auto_trade_enabled" });
  const numbers = Object.fromEntries(NUMBERS.map(([name]) => [name, h("input", { type: "number", name, id: `pref-${name}`, step: "any" })]));
  const allow = h("input", { name: "symbol_allowlist", id: "pref-symbol_allowlist", placeholder: "e.g. BTCUSDT, ETHUSDT (empty: all)" });
  const block = h("input", { name: "symbol_blocklist", id: "pref-symbol_blocklist", placeholder: "e.g. DOGEUSDT" });
  const algorithms = checks("algorithms", ALGORITHMS);
  const timeframes = checks("timeframes", TIMEFRAMES);
  const formError = h("p", { class: "form-error", id: "prefs-error", role: "alert" });
  const formOk = h("p", { class: "form-ok", id: "prefs-ok", role: "status" });
  const saved = h("p", { class: "muted small", id: "prefs-saved" });
  const submit = h("button", { class: "primary", type: "submit", text: "Save preferences" });
  const form = h(
    "form",
    { class: "form panel", id: "prefs-form", novalidate: true },
    h("label", { class: "checks", for: "pref-auto_trade_enabled" }, auto, "Trade signals automatically for me"),
    h("span", { class: "field-error", dataset: { errorFor: "auto_trade_enabled" } }),
    group("Algorithms", algorithms, "algorithms"),
    group("Timeframes", timeframes, "timeframes"),
    NUMBERS.map(([name, label, hint]) => field(label, numbers[name], { name, hint })),
    field("Only these symbols", allow, { name: "symbol_allowlist" }),
    field("Never these symbols", block, { name: "symbol_blocklist" }),
    submit,
    formError,
    formOk,
    saved,
  );
  let loaded = false;
  let closed = false;

  function fill(prefs) {
    auto.checked = prefs.auto_trade_enabled;
    for (const box of algorithms.querySelectorAll("input")) box.checked = prefs.algorithms.includes(box.value);
    for (const box of timeframes.querySelectorAll("input")) box.checked = prefs.timeframes.includes(box.value);
    for (const [name] of NUMBERS) numbers[name].value = String(prefs[name]);
    allow.value = prefs.symbol_allowlist.join(", ");
    block.value = prefs.symbol_blocklist.join(", ");
    saved.textContent = prefs.saved ? `Saved ${new Date(prefs.updated_at).toISOString().slice(0, 16).replace("T", " ")} UTC.` : "Defaults: not saved yet.";
    loaded = true;
  }

  function showFieldErrors(errors) {
    for (const el of form.querySelectorAll(".field-error")) el.textContent = errors[el.dataset.errorFor] || "";
  }

  function body() {
    const out = { action: "update", auto_trade_enabled: auto.checked };
    out.algorithms = [...algorithms.querySelectorAll("input:checked")].map((b) => b.value);
    out.timeframes = [...timeframes.querySelectorAll("input:checked")].map((b) => b.value);
    for (const [name] of NUMBERS) {
      const raw = numbers[name].value.trim();
      // Sent as typed: a blank or a word reaches the server, whose message says what is allowed.
      out[name] = raw === "" ? null : Number.isFinite(Number(raw)) ? Number(raw) : raw;
    }
    for (const name of Object.keys(out)) if (out[name] === null) delete out[name];
    out.symbol_allowlist = symbols(allow.value);
    out.symbol_blocklist = symbols(block.value);
    return out;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError.textContent = "";
    formOk.textContent = "";
    showFieldErrors({});
    submit.disabled = true;
    try {
      fill(await app.api.call("trading-preferences", body()));
      formOk.textContent = "Preferences saved.";
    } catch (err) {
      formError.textContent = err.message;
      if (err.fieldErrors) showFieldErrors(err.fieldErrors());
    } finally {
      submit.disabled = false;
    }
  });

  async function refresh() {
    if (loaded) return; // never overwrite what the user is typing
    try {
      const prefs = await app.api.call("trading-preferences", { action: "get" });
      if (!closed) fill(prefs);
    } catch (err) {
      if (!closed) formError.textContent = err.message;
    }
  }

  root.append(h("h1", { text: "Preferences" }), form);
  refresh();
  return { refresh, unmount: () => (closed = true) };
}
