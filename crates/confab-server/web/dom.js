// DOM helpers for the page: elements are built with text only, so nothing a
// user sent is ever parsed as HTML (no innerHTML anywhere in the page).

/**
 * Makes an element. `props`: `class`, `text` (its textContent), `attrs`
 * (attributes, set with setAttribute), `on` (event listeners), `dataset`,
 * and any other key is assigned as a property (`hidden`, `type`, `value`…).
 * Children are elements or strings (strings become text nodes).
 * @param {string} tag
 * @param {Record<string, any>} [props]
 * @param {...(Node | string | null | undefined | false)} children
 * @returns {HTMLElement}
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "attrs") for (const [name, v] of Object.entries(value)) v !== null && v !== undefined && node.setAttribute(name, String(v));
    else if (key === "on") for (const [name, fn] of Object.entries(value)) node.addEventListener(name, fn);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else /** @type {any} */ (node)[key] = value;
  }
  append(node, ...children);
  return node;
}

/**
 * Appends children (strings as text nodes; null, undefined and false skipped).
 * @param {Node} parent
 * @param {...(Node | string | null | undefined | false)} children
 */
export function append(parent, ...children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
  }
}

/** @param {Node} node removes every child */
export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

/**
 * The element with this id, or an error naming it (the page's skeleton is
 * index.html: a missing id is a bug there).
 * @param {string} id
 * @returns {any}
 */
export function byId(id) {
  const node = document.getElementById(id);
  if (!node) throw new Error(`index.html has no #${id}`);
  return node;
}

/**
 * Text for screen readers only (the `sr-only` class hides it on screen).
 * @param {string} text
 */
export function srOnly(text) {
  return el("span", { class: "sr-only", text });
}

/**
 * Says something to screen readers through the page's polite live region.
 * @param {string} text
 */
export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  // A fresh node each time, so that the same words twice are said twice.
  clear(region);
  region.appendChild(el("p", { text }));
}
