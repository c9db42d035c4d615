// Building the page without ever parsing data as HTML: every string becomes a text node or an
// attribute value, so markup in a signal, a log line or an exchange message shows as text.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.setAttribute("class", Array.isArray(value) ? value.filter(Boolean).join(" ") : value);
    else if (key === "text") el.textContent = String(value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "value" && "value" in el) el.value = String(value);
    else if (key === "checked" || key === "selected" || key === "disabled") el[key] = Boolean(value);
    else if (key === "style") throw new Error("inline styles are not allowed (CSP): use a class");
    else el.setAttribute(key, value === true ? "" : String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An HTML element: h("p", {class: "muted"}, "text", otherNode). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element (attributes only: presentation comes from classes in app.css). */
export function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null) continue;
    if (key === "text") el.textContent = String(value);
    else if (key === "style") throw new Error("inline styles are not allowed (CSP): use a class");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

/** Replace everything inside ``el`` with ``children``. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A labelled form field; ``control`` is the input, ``name`` ties its inline error to the server's. */
export function field(label, control, { name, hint } = {}) {
  const id = control.id || `f-${name || Math.random().toString(36).slice(2)}`;
  control.id = id;
  return h(
    "div",
    { class: "field", dataset: name ? { field: name } : undefined },
    h("label", { for: id, text: label }),
    control,
    hint ? h("span", { class: "muted small", text: hint }) : null,
    h("span", { class: "field-error", dataset: { errorFor: name || id } }),
  );
}

/** The "no data yet" line every empty list shows. */
export function empty(text = "No data yet.") {
  return h("p", { class: "empty", text });
}
