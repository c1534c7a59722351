// Admin: users (search, paging, role, disable, delete, per-user limits),
// the audit trail with paging, and a backup download. Every action is an
// /admin/* call; the API refuses them (403) to anyone but an admin, and
// this view shows that refusal rather than deciding for itself.

import {$, h, setText, clear, show, fmtTime, fmtInt, armedButton} from './dom.js';
import {errorFrom} from './api.js';

const PAGE = 20;
const AUDIT_PAGE = 25;
// Search reads the user list in chunks of SEARCH_CHUNK (the API's
// largest page), at most SEARCH_MAX users.
const SEARCH_CHUNK = 1000;
const SEARCH_MAX = 100000;

function intOrNull(v) {
  v = v.trim();
  return v === '' ? null : parseInt(v, 10);
}

// Admin wires the admin view to client.
export class Admin {
  constructor(client, app) {
    this.client = client;
    this.app = app;
    this.skip = 0;
    this.query = '';
    this.matches = null; // search results, paged here
    this.auditBefore = 0;
    this.auditLast = 0;
    this.limitsUser = null;
    $('user-search').addEventListener('submit', (ev) => { ev.preventDefault(); this.search($('user-search-q').value.trim()); });
    $('users-prev').addEventListener('click', () => { this.skip = Math.max(0, this.skip - PAGE); this.loadUsers(); });
    $('users-next').addEventListener('click', () => { this.skip += PAGE; this.loadUsers(); });
    $('audit-newest').addEventListener('click', () => { this.auditBefore = 0; this.loadAudit(); });
    $('audit-older').addEventListener('click', () => { this.auditBefore = this.auditLast; this.loadAudit(); });
    $('limits-form').addEventListener('submit', (ev) => { ev.preventDefault(); this.saveLimits(); });
    $('limits-cancel').addEventListener('click', () => { this.limitsUser = null; show($('limits-form'), false); });
    $('backup-download').addEventListener('click', () => this.backup());
  }

  async load() {
    setText($('admin-error'), '');
    try {
      await this.loadUsers();
    } catch (e) {
      // A user who is no admin lands here with the API's 403.
      show($('admin-body'), false);
      setText($('admin-error'), e.message);
      return;
    }
    show($('admin-body'), true);
    try {
      await this.loadAudit();
    } catch (e) {
      setText($('admin-error'), e.message);
    }
  }

  async fetchUsers(skip, limit) {
    return this.client.json('GET', `/admin/users?skip=${skip}&limit=${limit}`);
  }

  async search(q) {
    this.query = q;
    this.skip = 0;
    this.matches = null;
    setText($('users-error'), '');
    if (q) {
      const needle = q.toLowerCase();
      const found = [];
      for (let skip = 0; skip < SEARCH_MAX; skip += SEARCH_CHUNK) {
        const page = await this.fetchUsers(skip, SEARCH_CHUNK);
        for (const u of page) if (u.username.toLowerCase().includes(needle)) found.push(u);
        if (page.length < SEARCH_CHUNK) break;
      }
      this.matches = found;
    }
    await this.loadUsers();
  }

  async loadUsers() {
    let users, more;
    if (this.matches) {
      users = this.matches.slice(this.skip, this.skip + PAGE);
      more = this.skip + PAGE < this.matches.length;
    } else {
      users = await this.fetchUsers(this.skip, PAGE + 1);
      more = users.length > PAGE;
      users = users.slice(0, PAGE);
    }
    const rows = $('user-rows');
    clear(rows);
    if (!users.length) rows.append(h('tr', {}, h('td', {colspan: 5, class: 'muted'}, this.query ? 'No user matches.' : 'No users.')));
    for (const u of users) rows.append(this.userRow(u));
    $('users-prev').disabled = this.skip === 0;
    $('users-next').disabled = !more;
    const what = this.matches ? `${this.matches.length} matching “${this.query}”, ` : '';
    setText($('users-page'), `${what}page ${Math.floor(this.skip / PAGE) + 1}`);
  }

  userRow(u) {
    const role = h('select', {class: 'role', 'aria-label': 'role of ' + u.username},
      h('option', {value: 'user'}, 'user'), h('option', {value: 'admin'}, 'admin'));
    role.value = u.role;
    role.addEventListener('change', () => this.update(u, {role: role.value}));
    const toggle = h('button', {type: 'button', class: 'secondary ' + (u.disabled ? 'enable' : 'disable')},
      u.disabled ? 'Enable' : 'Disable');
    toggle.addEventListener('click', () => this.update(u, {disabled: !u.disabled}));
    const limits = h('button', {type: 'button', class: 'secondary limits'}, 'Limits');
    limits.addEventListener('click', () => this.openLimits(u));
    return h('tr', {'data-user-id': u.id, 'data-username': u.username, 'data-role': u.role},
      h('td', {}, String(u.id)), h('td', {}, u.username), h('td', {}, role),
      h('td', {class: 'state'}, u.disabled ? 'disabled' : 'active'),
      h('td', {class: 'row-actions'}, toggle, limits,
        armedButton('Delete', 'Really delete?', () => this.remove(u), {class: 'danger delete'})));
  }

  // refreshUsers shows the users and, on its first page, the audit trail
  // as they are after a change.
  async refreshUsers() {
    try {
      if (this.query) await this.search(this.query);
      else await this.loadUsers();
      if (this.auditBefore === 0) await this.loadAudit();
    } catch (e) {
      setText($('users-error'), e.message);
    }
  }

  async update(u, change) {
    setText($('users-error'), '');
    try {
      await this.client.json('PATCH', '/admin/users/' + u.id, change);
    } catch (e) {
      setText($('users-error'), `${u.username}: ${e.message}`);
    }
    await this.refreshUsers();
  }

  async remove(u) {
    setText($('users-error'), '');
    try {
      await this.client.json('DELETE', '/admin/users/' + u.id);
    } catch (e) {
      setText($('users-error'), `${u.username}: ${e.message}`);
    }
    await this.refreshUsers();
  }

  showLimits(st) {
    const o = st.overrides || {};
    $('limits-rpm').value = o.requests_per_minute === null || o.requests_per_minute === undefined ? '' : o.requests_per_minute;
    $('limits-tpd').value = o.tokens_per_day === null || o.tokens_per_day === undefined ? '' : o.tokens_per_day;
    const lim = (n) => (n > 0 ? fmtInt(n) : 'unlimited');
    setText($('limits-status'), `In force: ${lim(st.requests_per_minute)} requests/min, ${lim(st.tokens_per_day)} tokens/day; ` +
      `${fmtInt(st.tokens_used_today)} tokens used today. Empty fields take the role's default; 0 means unlimited.`);
  }

  async openLimits(u) {
    setText($('users-error'), '');
    try {
      const st = await this.client.json('GET', `/admin/users/${u.id}/limits`);
      this.limitsUser = u;
      setText($('limits-title'), 'Limits of ' + u.username);
      this.showLimits(st);
      show($('limits-form'), true);
    } catch (e) {
      setText($('users-error'), `${u.username}: ${e.message}`);
    }
  }

  async saveLimits() {
    const u = this.limitsUser;
    if (!u) return;
    try {
      const st = await this.client.json('PUT', `/admin/users/${u.id}/limits`, {
        requests_per_minute: intOrNull($('limits-rpm').value), tokens_per_day: intOrNull($('limits-tpd').value),
      });
      this.showLimits(st);
      setText($('limits-title'), 'Limits of ' + u.username + ' (saved)');
      if (this.auditBefore === 0) await this.loadAudit();
    } catch (e) {
      setText($('limits-status'), e.message);
    }
  }

  async loadAudit() {
    const q = `limit=${AUDIT_PAGE}` + (this.auditBefore ? `&before=${this.auditBefore}` : '');
    const events = await this.client.json('GET', '/admin/audit?' + q);
    const rows = $('audit-rows');
    clear(rows);
    for (const e of events) {
      rows.append(h('tr', {'data-seq': e.seq},
        h('td', {}, String(e.seq)), h('td', {}, fmtTime(e.time)), h('td', {}, e.action), h('td', {}, e.actor || ''),
        h('td', {}, e.target || ''), h('td', {}, e.ip || ''),
        h('td', {}, e.detail ? h('code', {class: 'detail'}, JSON.stringify(e.detail)) : '')));
    }
    if (events.length) this.auditLast = events[events.length - 1].seq;
    $('audit-older').disabled = events.length < AUDIT_PAGE;
    $('audit-newest').disabled = this.auditBefore === 0;
  }

  async backup() {
    const status = $('backup-status');
    setText(status, 'Downloading…');
    try {
      const resp = await this.client.request('/admin/backup');
      if (!resp.ok) throw await errorFrom(resp);
      const blob = await resp.blob();
      const cd = resp.headers.get('Content-Disposition') || '';
      const m = /filename="([^"]+)"/.exec(cd);
      const name = m ? m[1] : 'gpt2d-backup.db';
      const url = URL.createObjectURL(blob);
      const a = h('a', {href: url, download: name});
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      setText(status, `Saved ${name} (${fmtInt(blob.size)} bytes).`);
    } catch (e) {
      setText(status, e.message);
    }
  }
}
