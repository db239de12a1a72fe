// Building and updating the console's DOM. Text always goes in as text (`textContent`,
// attribute values), never as HTML, so markup in a site or battery name stays text. The
// server's content security policy forbids inline style, so nothing here sets a `style`
// attribute: looks come from classes and SVG presentation attributes.

const SVG_NS = 'http://www.w3.org/2000/svg';

/** Sets attributes (skipping undefined and false) and appends children (nodes, or strings as text). */
function fill(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === false || value === null) continue;
    el.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(typeof child === 'string' || typeof child === 'number' ? String(child) : child);
  }
  return el;
}

/** A new HTML element `tag` with `attrs` and `children`. */
export function h(tag, attrs, ...children) {
  return fill(document.createElement(tag), attrs, children);
}

/** A new SVG element `tag` with `attrs` and `children`. */
export function s(tag, attrs, ...children) {
  return fill(document.createElementNS(SVG_NS, tag), attrs, children);
}

/** Sets `el`'s text when it differs (an unchanged node keeps its selection and focus). */
export function setText(el, text) {
  const value = String(text);
  if (el.textContent !== value) el.textContent = value;
}

/** Sets or removes (undefined, false) an attribute when it differs. */
export function setAttr(el, name, value) {
  if (value === undefined || value === false || value === null) {
    if (el.hasAttribute(name)) el.removeAttribute(name);
  } else if (el.getAttribute(name) !== String(value)) {
    el.setAttribute(name, String(value));
  }
}

const keyed = new WeakMap();

/**
 * Makes `parent`'s children one element per item, in order, reusing the element of an
 * item's key from the previous call (so a focused row stays focused across refreshes):
 * `create(item)` makes a new one, `update(el, item)` brings any one up to date. `parent`
 * holds only elements made here.
 */
export function syncKeyed(parent, items, keyOf, create, update) {
  const before = keyed.get(parent) || new Map();
  const after = new Map();
  let cursor = parent.firstChild;
  for (const item of items) {
    const key = keyOf(item);
    if (after.has(key)) continue;
    const el = before.get(key) || create(item);
    update(el, item);
    after.set(key, el);
    if (el === cursor) cursor = cursor.nextSibling;
    else parent.insertBefore(el, cursor);
  }
  for (const [key, el] of before) if (!after.has(key)) el.remove();
  keyed.set(parent, after);
}
