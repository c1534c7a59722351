// My account: the caller's limits, tokens per day over the last 30 days
// as an SVG chart, API keys (created, shown once, listed, revoked) and the
// password change.

import {$, h, svg, setText, clear, show, fmtTime, fmtInt, armedButton} from './dom.js';

const DAY_MS = 24 * 60 * 60 * 1000;

// days lists the dates from..to (YYYY-MM-DD, UTC) inclusive.
function days(from, to) {
  const out = [];
  for (let t = Date.parse(from + 'T00:00:00Z'); t <= Date.parse(to + 'T00:00:00Z'); t += DAY_MS) {
    out.push(new Date(t).toISOString().slice(0, 10));
  }
  return out;
}

// usageChart draws tokens per day as bars, one per date of the range,
// with the value in each bar's title (shown on hover and read by screen
// readers).
export function usageChart(usage) {
  const dates = days(usage.from, usage.to);
  const perDay = new Map(usage.days.map((d) => [d.date, d.total_tokens]));
  const values = dates.map((d) => perDay.get(d) || 0);
  const top = Math.max(1, ...values);
  const W = 600, H = 180, left = 48, bottom = 20, gap = 2;
  const bw = (W - left) / dates.length;
  const plot = H - bottom - 8;
  const chart = svg('svg', {viewBox: `0 0 ${W} ${H}`, role: 'img', class: 'bars',
    'aria-label': `Tokens per day from ${usage.from} to ${usage.to}, at most ${top}`});
  chart.append(
    svg('line', {x1: left, y1: H - bottom, x2: W, y2: H - bottom, class: 'axis'}),
    svg('text', {x: left - 6, y: 8 + 4, class: 'label end'}, fmtInt(top)),
    svg('text', {x: left - 6, y: H - bottom, class: 'label end'}, '0'),
    svg('text', {x: left, y: H - 4, class: 'label'}, dates[0]),
    svg('text', {x: W, y: H - 4, class: 'label end'}, dates[dates.length - 1]),
  );
  dates.forEach((d, i) => {
    const v = values[i];
    const bh = v ? Math.max(1, (v / top) * plot) : 0;
    chart.append(svg('rect', {
      x: (left + i * bw + gap / 2).toFixed(2), y: (H - bottom - bh).toFixed(2),
      width: Math.max(1, bw - gap).toFixed(2), height: bh.toFixed(2),
      class: 'bar', 'data-date': d, 'data-tokens': v,
    }, svg('title', {}, `${d}: ${fmtInt(v)} tokens`)));
  });
  return chart;
}

function limitText(n) {
  return n > 0 ? fmtInt(n) : 'unlimited';
}

// Account wires the account view to client; app supplies the signed-in
// user.
export class Account {
  constructor(client, app) {
    this.client = client;
    this.app = app;
    $('key-form').addEventListener('submit', (ev) => { ev.preventDefault(); this.createKey(); });
    $('key-copy').addEventListener('click', () => this.copyKey());
    $('key-dismiss').addEventListener('click', () => { $('key-value').value = ''; show($('key-created'), false); });
    $('password-form').addEventListener('submit', (ev) => { ev.preventDefault(); this.changePassword(); });
  }

  async load() {
    setText($('account-error'), '');
    show($('key-scope-admin-label'), this.app.me && this.app.me.role === 'admin');
    try {
      await Promise.all([this.loadUsage(), this.loadKeys()]);
    } catch (e) {
      setText($('account-error'), e.message);
    }
  }

  async loadUsage() {
    const u = await this.client.json('GET', '/users/me/usage');
    const l = u.limits || {};
    const dl = $('account-limits');
    clear(dl);
    const fact = (k, v, id) => dl.append(h('dt', {}, k), h('dd', {id}, v));
    fact('Requests per minute', limitText(l.requests_per_minute), 'limit-rpm');
    fact('Tokens per day', limitText(l.tokens_per_day), 'limit-tpd');
    fact('Tokens used today', fmtInt(l.tokens_used_today), 'limit-used');
    const box = $('usage-chart');
    clear(box);
    box.append(usageChart(u));
    setText($('usage-total'), `${fmtInt(u.total.total_tokens)} tokens in ${fmtInt(u.total.requests)} requests from ${u.from} to ${u.to}`);
  }

  async loadKeys() {
    const keys = await this.client.json('GET', '/users/me/keys');
    const rows = $('key-rows');
    clear(rows);
    if (!keys.length) rows.append(h('tr', {}, h('td', {colspan: 7, class: 'muted'}, 'No API keys yet.')));
    for (const k of keys) {
      rows.append(h('tr', {'data-key-id': k.id, 'data-key-name': k.name},
        h('td', {}, k.name), h('td', {}, h('code', {}, k.prefix + '…')), h('td', {}, (k.scopes || []).join(', ')),
        h('td', {}, fmtTime(k.created_at)), h('td', {}, k.expires_at ? fmtTime(k.expires_at) : 'never'),
        h('td', {}, fmtTime(k.last_used_at)),
        h('td', {}, armedButton('Revoke', 'Really revoke?', () => this.revokeKey(k.id), {class: 'danger revoke'}))));
    }
  }

  async createKey() {
    setText($('key-error'), '');
    const scopes = [];
    if ($('key-scope-generate').checked) scopes.push('generate');
    if ($('key-scope-admin').checked && !$('key-scope-admin-label').hidden) scopes.push('admin');
    const body = {name: $('key-name').value, scopes};
    const exp = $('key-expires').value.trim();
    if (exp) body.expires_in_days = parseInt(exp, 10);
    try {
      const k = await this.client.json('POST', '/users/me/keys', body);
      $('key-value').value = k.key;
      setText($('key-copy-status'), '');
      show($('key-created'), true);
      $('key-name').value = '';
      await this.loadKeys();
    } catch (e) {
      setText($('key-error'), e.message);
    }
  }

  async copyKey() {
    const input = $('key-value');
    try {
      await navigator.clipboard.writeText(input.value);
      setText($('key-copy-status'), 'Copied to the clipboard.');
    } catch (_) {
      // No clipboard API (an insecure origin): select it for Ctrl+C.
      input.focus();
      input.select();
      setText($('key-copy-status'), 'Selected: press Ctrl+C (⌘C) to copy.');
    }
  }

  async revokeKey(id) {
    setText($('key-error'), '');
    try {
      await this.client.json('DELETE', '/users/me/keys/' + encodeURIComponent(id));
      await this.loadKeys();
    } catch (e) {
      setText($('key-error'), e.message);
    }
  }

  async changePassword() {
    const msg = $('pw-message');
    setText(msg, '');
    const current = $('pw-current').value, next = $('pw-new').value;
    if (next !== $('pw-confirm').value) {
      setText(msg, 'The new passwords differ.');
      return;
    }
    try {
      await this.client.json('POST', '/users/me/password', {current_password: current, new_password: next});
    } catch (e) {
      setText(msg, e.message);
      return;
    }
    for (const id of ['pw-current', 'pw-new', 'pw-confirm']) $(id).value = '';
    // The server revoked every token of the user, this one included.
    this.client.end('Password changed. Sign in with the new password.');
  }
}
