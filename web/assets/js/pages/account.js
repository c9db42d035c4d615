// Connecting Bybit keys (checked by the server with a signed balance call, then stored encrypted),
// the masked status, and disconnecting under the open-orders rule trading-account enforces.

import { empty, field, h, replace } from "../dom.js";
import { num, time } from "../format.js";

const ENVIRONMENTS = [
  ["paper", "Paper (the local paper exchange)"],
  ["testnet", "Testnet (testnet.bybit.com)"],
  ["demo", "Demo trading (Bybit's demo account)"],
  ["mainnet", "Mainnet (real money)"],
];

const WHERE = {
  paper:
    "The local paper exchange replays real candles with Bybit's rules and fees. An operator creates a key pair for it with `aitradex paper-account create`.",
  testnet:
    "Sign in at testnet.bybit.com (a separate account from bybit.com), open your profile → API → Create New Key → System-generated API Keys.",
  demo:
    "Sign in at bybit.com, switch to Demo Trading (top right), then profile → API → Create New Key. Demo keys work only on the demo environment.",
  mainnet:
    "Sign in at bybit.com, profile → API → Create New Key → System-generated API Keys. Orders on mainnet use real money, and only when the operator has enabled live trading.",
};

function guidance(environment) {
  return h(
    "div",
    { class: "guide", id: "key-guidance" },
    h("strong", { text: "Where to create the keys" }),
    h("p", { text: WHERE[environment] }),
    h("strong", { text: "Which permissions" }),
    h(
      "ul",
      {},
      h("li", { text: "API key permissions: Read-Write." }),
      h("li", { text: "Contract (Unified Trading): Orders and Positions. Nothing else is needed." }),
      h("li", { class: "warn", text: "Never enable Withdrawal or Transfer: this app never needs them, and a leaked key must not be able to move funds." }),
      h("li", { text: "Restrict the key to this server's IP address when Bybit offers it." }),
    ),
    h("p", { class: "muted small", text: "The secret is sent once over this connection, checked against the exchange, and stored encrypted; it is never shown again." }),
  );
}

export function accountPage(root, app) {
  const statusBox = h("div", { id: "account-status" }, h("p", { class: "muted", text: "Loading…" }));
  const environment = h("select", { name: "environment", id: "connect-environment" }, ENVIRONMENTS.map(([v, l]) => h("option", { value: v, text: l })));
  const apiKey = h("input", { name: "api_key", id: "connect-api-key", autocomplete: "off", spellcheck: "false" });
  const apiSecret = h("input", { name: "api_secret", id: "connect-api-secret", type: "password", autocomplete: "off" });
  const guide = h("div", {}, guidance("paper"));
  const formError = h("p", { class: "form-error", id: "connect-error", role: "alert" });
  const formOk = h("p", { class: "form-ok", id: "connect-ok", role: "status" });
  const submit = h("button", { class: "primary", type: "submit", text: "Connect" });
  const form = h(
    "form",
    { class: "form", id: "connect-form", novalidate: true },
    field("Environment", environment, { name: "environment" }),
    guide,
    field("API key", apiKey, { name: "api_key" }),
    field("API secret", apiSecret, { name: "api_secret" }),
    submit,
    formError,
    formOk,
  );
  environment.addEventListener("change", () => replace(guide, guidance(environment.value)));
  let closed = false;

  function showFieldErrors(errors) {
    for (const el of form.querySelectorAll(".field-error")) el.textContent = errors[el.dataset.errorFor] || "";
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    formError.textContent = "";
    formOk.textContent = "";
    showFieldErrors({});
    submit.disabled = true;
    try {
      const result = await app.api.call("trading-account", {
        action: "connect",
        environment: environment.value,
        api_key: apiKey.value,
        api_secret: apiSecret.value,
      });
      apiSecret.value = "";
      apiKey.value = "";
      const parts = [`Connected ${result.account.environment} (key …${result.account.key_hint}); equity ${num(result.balance.total_equity)} USD.`];
      if (result.relinked_orders) parts.push(`${result.relinked_orders} untracked order(s) are tracked again.`);
      if (result.untracked_orders) parts.push(`${result.untracked_orders} order(s) of the replaced key are no longer tracked.`);
      formOk.textContent = parts.join(" ");
      await refresh(true);
    } catch (err) {
      formError.textContent = err.message;
      if (err.fieldErrors) showFieldErrors(err.fieldErrors());
    } finally {
      submit.disabled = false;
    }
  });

  async function disconnect(account, row, confirmOpen) {
    const message = row.querySelector(".row-message");
    message.textContent = "";
    try {
      const body = { action: "disconnect", environment: account.environment };
      if (confirmOpen) body.confirm_open_orders = true;
      const result = await app.api.call("trading-account", body);
      await refresh(true);
      if (result.untracked_orders) formOk.textContent = `Disconnected ${result.environment}: ${result.untracked_orders} order(s) are no longer tracked.`;
      else formOk.textContent = `Disconnected ${result.environment}.`;
    } catch (err) {
      message.textContent = err.message;
      message.classList.add("error");
      if (err.status === 409 && !confirmOpen) {
        const count = err.details.open_orders;
        row.querySelector(".row-actions").append(
          h("button", {
            type: "button",
            class: "danger",
            dataset: { action: "confirm-disconnect" },
            text: `Disconnect anyway (${count} open order(s) stop being tracked)`,
            onclick: () => disconnect(account, row, true),
          }),
        );
      }
    }
  }

  function render(status) {
    if (!status.accounts.length) {
      replace(statusBox, empty("No exchange account connected yet."));
      return;
    }
    const rows = status.accounts.map((account) => {
      const row = h(
        "tr",
        { dataset: { environment: account.environment } },
        h("td", { text: account.environment }),
        h("td", { class: "num", text: `…${account.key_hint}` }),
        h("td", { text: account.is_active ? "active" : "inactive" }),
        h("td", { text: time(account.last_used_at) }),
        h("td", { text: time(account.created_at) }),
      );
      const actions = h("td", { class: "row-actions" });
      actions.append(
        h("button", { type: "button", dataset: { action: "disconnect" }, text: "Disconnect", onclick: () => disconnect(account, row, false) }),
        h("div", { class: "row-message small" }),
      );
      row.append(actions);
      return row;
    });
    replace(
      statusBox,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "table", id: "accounts-table" },
          h("thead", {}, h("tr", {}, ["Environment", "Key", "State", "Last used", "Connected", ""].map((t) => h("th", { text: t })))),
          h("tbody", {}, rows),
        ),
      ),
      h("p", { class: "muted small", text: status.live_trading_enabled ? "Live trading is enabled by the operator: mainnet accounts place real orders." : "Live trading is off: no order reaches mainnet." }),
    );
  }

  async function refresh(force = false) {
    // While a refusal waits for the user's decision, polling leaves the row as it is.
    if (!force && statusBox.querySelector('[data-action="confirm-disconnect"]')) return;
    try {
      const status = await app.api.call("trading-account", { action: "account_status" });
      if (!closed) render(status);
    } catch (err) {
      if (!closed) replace(statusBox, h("p", { class: "error", text: err.message }));
    }
  }

  root.append(
    h(
      "div",
      { class: "stack" },
      h("h1", { text: "Account" }),
      h("section", { class: "panel" }, h("h2", { text: "Connected exchange accounts" }), statusBox),
      h("section", { class: "panel" }, h("h2", { text: "Connect Bybit API keys" }), form),
    ),
  );
  refresh();
  return { refresh: () => refresh(), unmount: () => (closed = true) };
}
