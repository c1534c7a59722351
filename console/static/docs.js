// The API reference: renders this server's /openapi.json (an OpenAPI 3
// document) as a page — operations grouped by tag with their parameters,
// bodies and responses, then the schemas. Everything is built with DOM
// calls from the document's data, none of it parsed as HTML.

import {$, h, setText} from './dom.js';

const METHODS = ['get', 'post', 'put', 'patch', 'delete', 'head', 'options'];

// prose renders text in which `backticks` mark code.
function prose(text) {
  const parts = String(text || '').split('`');
  return parts.map((p, i) => (i % 2 ? h('code', {}, p) : p));
}

function refName(ref) {
  return ref.startsWith('#/components/schemas/') ? ref.slice('#/components/schemas/'.length) : ref;
}

// typeOf is a one-line description of a schema: its type, a $ref's name,
// an enum's values, a list's element type.
function typeOf(s) {
  if (!s) return 'any';
  if (s.$ref) return refName(s.$ref);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(' | ');
  for (const k of ['oneOf', 'anyOf']) if (s[k]) return s[k].map(typeOf).join(' | ');
  if (s.allOf) return s.allOf.map(typeOf).join(' & ');
  if (s.type === 'array') return typeOf(s.items) + '[]';
  let t = s.type || (s.properties ? 'object' : 'any');
  if (s.format) t += ' (' + s.format + ')';
  if (s.nullable) t += ' | null';
  return t;
}

function bounds(s) {
  const b = [];
  if (s.minimum !== undefined) b.push('≥ ' + s.minimum);
  if (s.maximum !== undefined) b.push('≤ ' + s.maximum);
  if (s.minLength !== undefined) b.push('length ≥ ' + s.minLength);
  if (s.maxLength !== undefined) b.push('length ≤ ' + s.maxLength);
  if (s.default !== undefined) b.push('default ' + JSON.stringify(s.default));
  return b.join(', ');
}

// schemaBlock lists an object schema's fields, or names the schema.
function schemaBlock(s, schemas) {
  const target = s && s.$ref ? schemas[refName(s.$ref)] : s;
  const head = s && s.$ref ? h('a', {href: '#schema-' + refName(s.$ref)}, refName(s.$ref)) : typeOf(s);
  if (!target || !target.properties) return h('div', {class: 'schema-ref'}, head);
  return h('div', {}, head, fieldsTable(target));
}

function fieldsTable(s) {
  const required = new Set(s.required || []);
  const rows = Object.entries(s.properties || {}).map(([name, p]) => h('tr', {},
    h('td', {}, h('code', {}, name), required.has(name) ? ' *' : ''),
    h('td', {}, p.$ref ? h('a', {href: '#schema-' + refName(p.$ref)}, refName(p.$ref)) : typeOf(p)),
    h('td', {}, prose(p.description), p.description && bounds(p) ? ' — ' : '', bounds(p))));
  return h('div', {class: 'scroll'}, h('table', {},
    h('thead', {}, h('tr', {}, h('th', {}, 'field'), h('th', {}, 'type'), h('th', {}, 'notes'))), h('tbody', {}, rows)));
}

function operation(path, method, op, doc) {
  const schemas = (doc.components || {}).schemas || {};
  const security = op.security !== undefined ? op.security : doc.security;
  const locked = security ? security.length > 0 : !!(op.responses || {})['401'];
  const body = h('div', {});
  if (op.description) body.append(h('p', {}, prose(op.description)));
  body.append(h('p', {class: 'muted'}, locked ? 'Needs Authorization: Bearer <access token or API key>.' : 'Public: no token needed.'));
  const params = op.parameters || [];
  if (params.length) {
    body.append(h('h3', {}, 'Parameters'), h('div', {class: 'scroll'}, h('table', {},
      h('thead', {}, h('tr', {}, h('th', {}, 'name'), h('th', {}, 'in'), h('th', {}, 'type'), h('th', {}, 'notes'))),
      h('tbody', {}, params.map((p) => h('tr', {},
        h('td', {}, h('code', {}, p.name), p.required ? ' *' : ''), h('td', {}, p.in), h('td', {}, typeOf(p.schema)),
        h('td', {}, prose(p.description), p.schema && bounds(p.schema) ? ' ' + bounds(p.schema) : '')))))));
  }
  if (op.requestBody) {
    body.append(h('h3', {}, 'Request body'));
    for (const [type, media] of Object.entries(op.requestBody.content || {})) {
      body.append(h('p', {}, h('code', {}, type)), schemaBlock(media.schema, schemas));
    }
  }
  body.append(h('h3', {}, 'Responses'));
  for (const [code, r] of Object.entries(op.responses || {})) {
    const types = Object.entries(r.content || {});
    body.append(h('p', {}, h('strong', {}, code), ' ', prose(r.description),
      types.length ? ' — ' : '', types.map(([t, m], i) => [i ? ', ' : '', h('code', {}, t), m.schema ? [' ', schemaLink(m.schema)] : ''])));
  }
  return h('details', {class: 'op', id: method + '-' + path},
    h('summary', {}, h('span', {class: 'method ' + method}, method.toUpperCase()), h('span', {class: 'path'}, path),
      h('span', {}, op.summary || ''), locked ? h('span', {class: 'lock'}, '🔒 bearer') : ''),
    body);
}

function schemaLink(s) {
  if (s.$ref) return h('a', {href: '#schema-' + refName(s.$ref)}, refName(s.$ref));
  if (s.type === 'array' && s.items && s.items.$ref) return [h('a', {href: '#schema-' + refName(s.items.$ref)}, refName(s.items.$ref)), '[]'];
  return typeOf(s);
}

function render(doc) {
  const info = doc.info || {};
  setText($('doc-title'), `${info.title || 'API'} ${info.version || ''}`.trim());
  $('doc-description').append(...prose(info.description));
  const byTag = new Map();
  for (const [path, item] of Object.entries(doc.paths || {})) {
    for (const method of METHODS) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags && op.tags[0]) || 'other';
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(path, method, op, doc));
    }
  }
  const ops = $('doc-operations');
  for (const [tag, list] of byTag) {
    $('doc-tags').append(h('a', {href: '#tag-' + tag}, tag));
    ops.append(h('h2', {class: 'tag-title', id: 'tag-' + tag}, tag), ...list);
  }
  $('doc-tags').append(h('a', {href: '#schemas'}, 'schemas'));
  const schemas = $('doc-schemas');
  for (const [name, s] of Object.entries((doc.components || {}).schemas || {})) {
    schemas.append(h('div', {class: 'card', id: 'schema-' + name},
      h('h3', {}, name), s.description ? h('p', {}, prose(s.description)) : '',
      s.properties ? fieldsTable(s) : h('p', {}, typeOf(s), bounds(s) ? ' — ' + bounds(s) : '')));
  }
}

async function main() {
  try {
    const resp = await fetch('/openapi.json', {credentials: 'omit', cache: 'no-store'});
    if (!resp.ok) throw new Error('GET /openapi.json: HTTP ' + resp.status);
    render(await resp.json());
    document.body.dataset.ready = 'true';
  } catch (e) {
    setText($('doc-error'), e.message);
  }
}

main();
