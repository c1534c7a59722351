// The console's entry point: sign-in and registration, the signed-in
// user, and which view is shown. Views have their own paths (/ui/<view>)
// so they can be bookmarked; the server answers each with this page.

import {$, setText, show} from './dom.js';
import {Client} from './api.js';
import {Playground} from './playground.js';
import {Account} from './account.js';
import {Admin} from './admin.js';

const VIEWS = ['signin', 'playground', 'account', 'admin'];

class App {
  constructor() {
    this.client = new Client();
    this.me = null;
    this.view = null;
    this.playground = new Playground(this.client);
    this.account = new Account(this.client, this);
    this.admin = new Admin(this.client, this);
    this.client.onEnd = (reason) => this.ended(reason);

    $('signin-form').addEventListener('submit', (ev) => { ev.preventDefault(); this.signIn(); });
    if (document.body.dataset.registration === 'open') {
      show($('register-form'), true);
      $('register-form').addEventListener('submit', (ev) => { ev.preventDefault(); this.register(); });
    }
    $('logout').addEventListener('click', () => this.logout());
    for (const a of document.querySelectorAll('a[data-view]')) {
      a.addEventListener('click', (ev) => {
        if (ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey) return;
        ev.preventDefault();
        this.go(a.dataset.view, true);
      });
    }
    window.addEventListener('popstate', () => this.go(this.viewFromPath(), false));
  }

  viewFromPath() {
    const m = /^\/ui\/([a-z]+)$/.exec(location.pathname);
    return m && VIEWS.includes(m[1]) ? m[1] : null;
  }

  notice(text) {
    setText($('notice'), text || '');
    show($('notice'), !!text);
  }

  async start() {
    if (this.client.signedIn) {
      try {
        await this.loadMe();
      } catch (e) {
        if (this.client.signedIn) this.notice(e.message);
      }
    }
    await this.go(this.viewFromPath(), false);
  }

  async loadMe() {
    this.me = await this.client.json('GET', '/users/me');
    setText($('whoami'), `${this.me.username} (${this.me.role})`);
    show($('nav-admin'), this.me.role === 'admin');
    show($('nav'), true);
    show($('logout'), true);
  }

  // go shows view (signed-out callers always see sign-in) and loads its
  // data; push records it in the history.
  async go(view, push) {
    if (!this.client.signedIn) view = 'signin';
    else if (!view || view === 'signin') view = 'playground';
    if (push && location.pathname !== '/ui/' + view) history.pushState(null, '', '/ui/' + view);
    this.view = view;
    for (const v of VIEWS) show($('view-' + v), v === view);
    for (const a of document.querySelectorAll('nav a[data-view]')) {
      if (a.dataset.view === view) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.title = 'gpt2d · ' + {signin: 'sign in', playground: 'playground', account: 'my account', admin: 'admin'}[view];
    if (view === 'account') await this.account.load();
    if (view === 'admin') await this.admin.load();
    // Set once loaded, unless another view took over meanwhile (a refused
    // session switches to sign-in from inside a load).
    if (this.view === view) document.body.dataset.view = view;
  }

  async signIn() {
    const err = $('signin-error');
    setText(err, '');
    const username = $('signin-username').value, password = $('signin-password').value;
    try {
      await this.client.login(username, password);
      await this.loadMe();
    } catch (e) {
      setText(err, e.message);
      return;
    }
    $('signin-password').value = '';
    this.notice('');
    await this.go(this.viewFromPath(), true);
  }

  async register() {
    const msg = $('register-message');
    setText(msg, '');
    const username = $('register-username').value;
    try {
      await this.client.register(username, $('register-password').value);
    } catch (e) {
      setText(msg, e.message);
      return;
    }
    $('register-password').value = '';
    $('signin-username').value = username;
    setText(msg, `Account ${username} created: sign in.`);
  }

  async logout() {
    this.playground.stop();
    try {
      await this.client.logout();
    } catch (_) { /* the tokens are forgotten here either way */ }
    this.signedOut('Signed out.');
  }

  // ended is called when the API refuses the session for good.
  ended(reason) {
    this.playground.stop();
    this.signedOut(reason);
  }

  signedOut(reason) {
    this.me = null;
    setText($('whoami'), '');
    show($('nav'), false);
    show($('logout'), false);
    this.notice(reason);
    this.go('signin', true);
  }
}

new App().start();
