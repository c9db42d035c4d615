// Numbers and times as the page shows them. Nothing here invents a value: null is "–".

const DASH = "–";

export function num(value, digits = 2) {
  if (value === null || value === undefined || value === "") return DASH;
  const n = Number(value);
  if (!Number.isFinite(n)) return DASH;
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** A price with the precision it needs (small coins have many decimals). */
export function price(value) {
  if (value === null || value === undefined || value === "") return DASH;
  const n = Number(value);
  if (!Number.isFinite(n)) return DASH;
  const abs = Math.abs(n);
  const digits = abs >= 1000 ? 2 : abs >= 1 ? 4 : abs >= 0.01 ? 6 : 8;
  return n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: Math.min(2, digits) });
}

export function signed(value, digits = 2) {
  if (value === null || value === undefined || value === "") return DASH;
  const n = Number(value);
  if (!Number.isFinite(n)) return DASH;
  return (n > 0 ? "+" : "") + num(n, digits);
}

export function pct(value, digits = 1) {
  if (value === null || value === undefined) return DASH;
  return `${num(Number(value) * 100, digits)} %`;
}

/** A UTC time, "2024-01-15 01:05 UTC" (the replay's clock is UTC; so is the exchange's). */
export function time(value) {
  if (!value) return DASH;
  const d = typeof value === "number" ? new Date(value) : new Date(String(value));
  if (Number.isNaN(d.getTime())) return DASH;
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

export function pnlClass(value) {
  const n = Number(value);
  if (!Number.isFinite(n) || n === 0) return "";
  return n > 0 ? "long" : "short";
}

const TIMEFRAME_NAMES = { D: "1 day", W: "1 week", M: "1 month" };
export function timeframe(tf) {
  return TIMEFRAME_NAMES[tf] || `${tf} min`;
}

/** Milliseconds of one candle of ``tf`` (months taken as 30 days: only for chart padding). */
export function timeframeMs(tf) {
  if (tf === "D") return 86_400_000;
  if (tf === "W") return 7 * 86_400_000;
  if (tf === "M") return 30 * 86_400_000;
  return Number(tf) * 60_000;
}
