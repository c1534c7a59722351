// DOM helpers. Everything the console shows is built with these: strings
// become text nodes, never markup, so text from the server or the model
// cannot turn into elements or scripts. (The page's Content-Security-Policy
// enforces Trusted Types as well, so assigning a string as HTML throws.)

const SVG_NS = 'http://www.w3.org/2000/svg';

// $ returns the element with this id; a missing one is a bug in the page.
export function $(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error('console: no element #' + id);
  return el;
}

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// h creates an HTML element: h('td', {class: 'x'}, 'text', child, ...).
export function h(tag, attrs, ...children) {
  if (tag === 'script' || tag === 'style' || tag === 'iframe') throw new Error('console: h refuses <' + tag + '>');
  return build(document.createElement(tag), attrs, children);
}

// svg creates an SVG element the same way.
export function svg(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

// setText replaces the content of el with one text node.
export function setText(el, text) {
  el.textContent = text === undefined || text === null ? '' : String(text);
}

// clear removes every child of el.
export function clear(el) {
  el.replaceChildren();
}

// show sets whether el is shown (the hidden attribute, so no inline style).
export function show(el, on) {
  el.hidden = !on;
}

// fmtTime renders an ISO time as "YYYY-MM-DD HH:MM" in UTC, or "–".
export function fmtTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  if (isNaN(d)) return String(iso);
  return d.toISOString().slice(0, 16).replace('T', ' ');
}

// fmtInt renders an integer with thousands separators.
export function fmtInt(n) {
  return Number(n || 0).toLocaleString('en-US');
}

// armedButton makes a destructive button ask for a second click within a
// few seconds before it acts, instead of a modal dialog.
export function armedButton(label, confirmLabel, action, attrs) {
  let timer = null;
  const b = h('button', Object.assign({type: 'button', class: 'danger'}, attrs || {}), label);
  b.addEventListener('click', async () => {
    if (!timer) {
      setText(b, confirmLabel);
      b.classList.add('armed');
      timer = setTimeout(() => { timer = null; setText(b, label); b.classList.remove('armed'); }, 5000);
      return;
    }
    clearTimeout(timer);
    timer = null;
    b.disabled = true;
    try {
      await action();
    } finally {
      b.disabled = false;
      setText(b, label);
      b.classList.remove('armed');
    }
  });
  return b;
}
