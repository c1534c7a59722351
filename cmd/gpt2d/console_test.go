package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"gpt2d/auth"
	"gpt2d/store"
)

// metric reads one unlabelled sample from /metrics.
func (s *server) metric(t *testing.T, token, name string) float64 {
	t.Helper()
	code, body := s.call(t, "GET", "/metrics", token, "")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return 0
}

func ptr[T any](v T) *T { return &v }

// signIn fills and submits the sign-in form and waits for the playground.
func (tb *tab) signIn(user, password string) {
	tb.b.t.Helper()
	tb.until("sign-in page shown", `document.body.dataset.view === 'signin'`)
	tb.set("#signin-username", user)
	tb.set("#signin-password", password)
	tb.click("#signin-submit")
	tb.until(user+" signed in", `document.body.dataset.view === 'playground' && document.getElementById('whoami').textContent.startsWith(`+strconv.Quote(user+" (")+`)`)
}

// generate starts a generation in the playground.
func (tb *tab) generate(prompt string, maxNewTokens int) {
	tb.b.t.Helper()
	tb.set("#gen-prompt", prompt)
	tb.set("#gen-max-new-tokens", strconv.Itoa(maxNewTokens))
	tb.set("#gen-seed", "7")
	// Blank the last run's output, so conditions on it see this run only.
	eval[bool](tb, `(document.getElementById('gen-text').textContent = document.getElementById('gen-status').textContent = '') === ''`)
	tb.do("generate", chromedp.WaitEnabled(chromedp.CSS("#gen-start")), chromedp.Click(chromedp.CSS("#gen-start")))
}

// TestConsoleInABrowser drives the web console of the built server (the
// tiny model) in headless Chromium: registration and sign-in, a prompt
// that must not become HTML, API keys, usage and limits, the admin views
// and their enforcement by the API, sessions ended by an admin and by
// logout, a phone-sized screen, and the API reference. Streaming and Stop
// are in TestConsoleStreamsAndStops, on a model slow enough to stop.
func TestConsoleInABrowser(t *testing.T) {
	data := filepath.Join(t.TempDir(), "gpt2d.db")
	s := startServe(t, data, []string{"GPT2D_ADMIN_USERNAME=root", "GPT2D_ADMIN_PASSWORD=root-password"})
	b := startBrowser(t, s.url)
	root := s.token(t, "root", "root-password")
	if code, body := s.call(t, "POST", "/users", "", `{"username":"bob","password":"bob-password"}`); code != 200 {
		t.Fatalf("register bob: %d %s", code, body)
	}

	alice := b.tabs[0]
	alice.name = "alice"
	t.Run("register and sign in", func(t *testing.T) {
		defer b.bind(t)()
		alice.do("open console", chromedp.Navigate(s.url+"/"))
		alice.until("sign-in page", `document.body.dataset.view === 'signin' && !document.getElementById('register-form').hidden`)
		alice.set("#register-username", "alice")
		alice.set("#register-password", "alice-password")
		alice.click("#register-submit")
		alice.until("account created", `document.getElementById('register-message').textContent.includes('created')`)

		alice.set("#signin-username", "alice")
		alice.set("#signin-password", "wrong-password")
		alice.click("#signin-submit")
		alice.until("wrong password refused", `document.getElementById('signin-error').textContent === 'Incorrect username or password'`)
		alice.signIn("alice", "alice-password")
		if !eval[bool](alice, `document.getElementById('nav-admin').hidden`) {
			t.Error("a user sees the Admin link")
		}
	})

	t.Run("prompt with markup renders as text", func(t *testing.T) {
		defer b.bind(t)()
		const payload = `<img src=x onerror=alert(1)><script>alert(2)</script>`
		alice.generate(payload, 8)
		alice.until("generated", `document.getElementById('gen-status').textContent.startsWith('done')`)
		if echo := alice.text("#gen-echo"); echo != payload {
			t.Fatalf("prompt shown as %q", echo)
		}
		if n := eval[int](alice, `document.querySelectorAll('#gen-output *').length + document.images.length`); n != 2 {
			t.Fatalf("the output holds %d elements besides its two spans", n-2)
		}
	})

	var key string
	t.Run("account: usage, limits, create, use and revoke a key", func(t *testing.T) {
		defer b.bind(t)()
		alice.click("#nav-account")
		alice.until("account view", `document.body.dataset.view === 'account' && document.querySelectorAll('#usage-chart rect.bar').length === 30`)
		today := time.Now().UTC().Format("2006-01-02")
		if n := eval[int](alice, `+(document.querySelector('#usage-chart rect.bar[data-date="`+today+`"]')?.dataset.tokens ?? -1)`); n <= 0 {
			t.Fatalf("today's bar shows %d tokens", n)
		}
		if rpm := alice.text("#limit-rpm"); rpm != "60" {
			t.Fatalf("requests per minute shown: %q", rpm)
		}

		alice.set("#key-name", "ci-key")
		alice.click("#key-create")
		alice.until("key shown once", `!document.getElementById('key-created').hidden && document.getElementById('key-value').value !== ''`)
		key = eval[string](alice, `document.getElementById('key-value').value`)
		if !strings.HasPrefix(key, auth.KeyPrefix) {
			t.Fatalf("key %q", key)
		}
		alice.click("#key-copy")
		alice.until("copy acknowledged", `document.getElementById('key-copy-status').textContent !== ''`)
		alice.until("key listed", `document.querySelector('#key-rows tr[data-key-name="ci-key"]')`)
		if strings.Contains(alice.text("#key-rows"), key) {
			t.Fatal("the key list shows the whole key")
		}

		if code, body := s.call(t, "POST", "/generate", key, `{"prompt":"Keyed","max_new_tokens":3}`); code != 200 {
			t.Fatalf("generate with the new key: %d %s", code, body)
		}
		alice.click(`#key-rows tr[data-key-name="ci-key"] button.revoke`)
		alice.until("revoke armed", `document.querySelector('#key-rows tr[data-key-name="ci-key"] button.revoke.armed')`)
		alice.click(`#key-rows tr[data-key-name="ci-key"] button.revoke`)
		alice.until("key gone", `!document.querySelector('#key-rows tr[data-key-name="ci-key"]')`)
		if code, _ := s.call(t, "POST", "/generate", key, `{"prompt":"Keyed","max_new_tokens":3}`); code != 401 {
			t.Fatalf("revoked key: %d", code)
		}
	})

	t.Run("a user cannot reach the admin view", func(t *testing.T) {
		defer b.bind(t)()
		alice.do("open /ui/admin", chromedp.Navigate(s.url+"/ui/admin"))
		alice.until("admin refused", `document.body.dataset.view === 'admin' && document.getElementById('admin-error').textContent === 'Admin access required'`)
		if !eval[bool](alice, `document.getElementById('admin-body').hidden && document.getElementById('user-rows').children.length === 0`) {
			t.Fatal("admin data shown to a user")
		}
		// The console's own origin, the user's own token: the API says no.
		codes := eval[[]int](alice, `(async () => {
			const tok = JSON.parse(sessionStorage.getItem('gpt2d.session')).access;
			const auth = {Authorization: 'Bearer ' + tok};
			return [
				(await fetch('/admin/users', {headers: auth})).status,
				(await fetch('/admin/users/2', {method: 'PATCH', headers: {...auth, 'Content-Type': 'application/json'}, body: '{"role":"admin"}'})).status,
				(await fetch('/admin/backup', {headers: auth})).status,
				(await fetch('/users', {method: 'POST', headers: {...auth, 'Content-Type': 'application/json'}, body: '{"username":"mallory","password":"mallory-password","role":"admin"}'})).status,
				(await fetch('/admin/users', {credentials: 'include'})).status,
			];
		})()`)
		if fmt.Sprint(codes) != "[403 403 403 403 401]" {
			t.Fatalf("crafted admin calls from the console answered %v, want [403 403 403 403 401]", codes)
		}
		if code, body := s.call(t, "GET", "/users/me", s.token(t, "bob", "bob-password"), ""); code != 200 || !strings.Contains(body, `"role":"user"`) {
			t.Fatalf("bob after the crafted PATCH: %d %s", code, body)
		}
	})

	admin := b.newTab("root")
	t.Run("admin: users, limits, role, delete, audit paging, backup", func(t *testing.T) {
		defer b.bind(t)()
		// Enough audited events for two pages of the audit trail.
		for i := range 30 {
			if code, body := s.call(t, "POST", "/generate", root, fmt.Sprintf(`{"prompt":"audit %d","max_new_tokens":1}`, i)); code != 200 {
				t.Fatalf("generate: %d %s", code, body)
			}
		}
		admin.do("open console", chromedp.Navigate(s.url+"/"))
		admin.signIn("root", "root-password")
		admin.until("Admin link", `!document.getElementById('nav-admin').hidden`)
		admin.click("#nav-admin")
		admin.until("users listed", `document.body.dataset.view === 'admin' && document.querySelector('#user-rows tr[data-username="alice"]')`)

		admin.set("#user-search-q", "ALI")
		admin.click(`#user-search button[type="submit"]`)
		admin.until("search narrowed", `document.querySelectorAll('#user-rows tr').length === 1 && document.querySelector('#user-rows tr[data-username="alice"]')`)

		admin.click(`#user-rows tr[data-username="alice"] button.limits`)
		admin.until("limits form", `!document.getElementById('limits-form').hidden`)
		admin.set("#limits-tpd", "100000")
		admin.click("#limits-save")
		admin.until("limits saved", `document.getElementById('limits-status').textContent.includes('100,000 tokens/day')`)
		aliceID := eval[string](admin, `document.querySelector('#user-rows tr[data-username="alice"]').dataset.userId`)
		_, body := s.call(t, "GET", "/admin/users/"+aliceID+"/limits", root, "")
		if !strings.Contains(body, `"tokens_per_day":100000`) {
			t.Fatalf("alice's limits after saving: %s", body)
		}
		admin.click("#limits-cancel")

		// Paging: 20 users a page.
		for i := range 22 {
			if code, body := s.call(t, "POST", "/users", root, fmt.Sprintf(`{"username":"user%02d","password":"user-password-%02d"}`, i, i)); code != 200 {
				t.Fatalf("register user%02d: %d %s", i, code, body)
			}
		}
		admin.set("#user-search-q", "")
		admin.click(`#user-search button[type="submit"]`)
		admin.until("first page", `document.querySelectorAll('#user-rows tr').length === 20 && !document.getElementById('users-next').disabled`)
		admin.click("#users-next")
		admin.until("second page", `document.querySelectorAll('#user-rows tr').length === 5 && document.getElementById('users-next').disabled && document.getElementById('users-page').textContent === 'page 2'`)
		admin.click("#users-prev")
		admin.until("bob listed", `document.querySelectorAll('#user-rows tr').length === 20 && document.querySelector('#user-rows tr[data-username="bob"]')`)
		eval[bool](admin, `(() => { const s = document.querySelector('#user-rows tr[data-username="bob"] select.role'); s.value = 'admin'; s.dispatchEvent(new Event('change')); return true; })()`)
		waitFor(t, func() bool {
			_, body := s.call(t, "GET", "/admin/users", root, "")
			return strings.Contains(body, `"username":"bob","role":"admin"`)
		})
		admin.until("bob listed as admin", `document.querySelector('#user-rows tr[data-username="bob"][data-role="admin"]')`)
		admin.click(`#user-rows tr[data-username="bob"] button.delete`)
		admin.click(`#user-rows tr[data-username="bob"] button.delete`)
		admin.until("bob deleted", `!document.querySelector('#user-rows tr[data-username="bob"]')`)
		if _, body := s.call(t, "GET", "/admin/users", root, ""); strings.Contains(body, `"bob"`) {
			t.Fatalf("bob still stored: %s", body)
		}

		admin.until("deletion audited", `document.querySelectorAll('#audit-rows tr').length === 25 && document.querySelector('#audit-rows tr:first-child').textContent.includes('user.delete')`)
		last := eval[int](admin, `+document.querySelector('#audit-rows tr:last-child').dataset.seq`)
		admin.click("#audit-older")
		admin.until("older page", `+document.querySelector('#audit-rows tr:first-child')?.dataset.seq === `+strconv.Itoa(last-1))
		admin.click("#audit-newest")
		admin.until("newest page", `+document.querySelector('#audit-rows tr:last-child')?.dataset.seq === `+strconv.Itoa(last))

		downloads := t.TempDir()
		if _, err := chromedp.Call(admin.ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
			Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: downloads, EventsEnabled: ptr(true)}); err != nil {
			t.Fatalf("allow downloads: %v", err)
		}
		progress := chromedp.Events(admin.ctx, cdpbrowser.DownloadProgress)
		completed := make(chan struct{})
		go func() {
			defer close(completed)
			for ev, err := range progress {
				if err != nil || ev.State == cdpbrowser.DownloadProgressStateCompleted {
					return
				}
			}
		}()
		admin.click("#backup-download")
		admin.until("backup saved", `document.getElementById('backup-status').textContent.startsWith('Saved gpt2d-')`)
		select {
		case <-completed:
		case <-time.After(browserWait):
			t.Fatal("download never completed")
		}
		m, _ := filepath.Glob(filepath.Join(downloads, "gpt2d-*.db"))
		if len(m) != 1 {
			t.Fatalf("downloads: %v", m)
		}
		snapshot := m[0]
		db, err := store.Open(snapshot, store.Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("downloaded backup: %v", err)
		}
		defer db.Close()
		if _, err := db.UserByUsername("alice"); err != nil {
			t.Fatalf("backup lacks alice: %v", err)
		}
	})

	t.Run("a disabled user's open console is signed out at the next call", func(t *testing.T) {
		defer b.bind(t)()
		admin.click(`#user-rows tr[data-username="alice"] button.disable`)
		admin.until("alice disabled", `document.querySelector('#user-rows tr[data-username="alice"] td.state')?.textContent === 'disabled'`)
		alice.click("#nav-playground")
		alice.until("playground", `document.body.dataset.view === 'playground'`)
		alice.click("#gen-start")
		alice.until("alice signed out", `document.body.dataset.view === 'signin' && document.getElementById('notice').textContent.includes('session has ended')`)
		if eval[bool](alice, `sessionStorage.getItem('gpt2d.session') !== null`) {
			t.Fatal("tokens kept after the session ended")
		}
	})

	t.Run("logout revokes the tokens", func(t *testing.T) {
		defer b.bind(t)()
		tok := eval[string](admin, `JSON.parse(sessionStorage.getItem('gpt2d.session')).access`)
		admin.click("#logout")
		admin.until("signed out", `document.body.dataset.view === 'signin' && document.getElementById('notice').textContent === 'Signed out.'`)
		if code, _ := s.call(t, "GET", "/users/me", tok, ""); code != 401 {
			t.Fatalf("access token after logout: %d", code)
		}
	})

	phone := b.newTab("phone")
	t.Run("every view fits a phone-width screen", func(t *testing.T) {
		defer b.bind(t)()
		phone.do("phone screen", chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
			chromedp.Navigate(s.url+"/"))
		fits := `document.documentElement.scrollWidth <= window.innerWidth`
		phone.until("sign-in fits", `document.body.dataset.view === 'signin' && `+fits)
		phone.signIn("root", "root-password")
		phone.until("playground fits", fits)
		for _, view := range []string{"account", "admin"} {
			phone.click("#nav-" + view)
			phone.until(view+" fits", `document.body.dataset.view === '`+view+`' && `+fits)
		}
	})

	t.Run("docs render the OpenAPI document offline", func(t *testing.T) {
		defer b.bind(t)()
		var doc struct {
			Paths map[string]map[string]any `json:"paths"`
		}
		resp, err := http.Get(s.url + "/openapi.json")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&doc)
		resp.Body.Close()
		ops := 0
		for _, item := range doc.Paths {
			ops += len(item)
		}
		phone.do("open /docs", chromedp.Navigate(s.url+"/docs"))
		phone.until("docs rendered", `document.body.dataset.ready === 'true'`)
		if n := eval[int](phone, `document.querySelectorAll('details.op').length`); n != ops || ops < 20 {
			t.Fatalf("docs show %d operations, openapi.json has %d", n, ops)
		}
		if !eval[bool](phone, `!!document.getElementById('post-/generate')`) {
			t.Fatal("docs lack POST /generate")
		}
	})

	for _, tb := range b.tabs {
		tb.clean()
	}
	if t.Failed() {
		t.Logf("server log:\n%s", s.logs)
	}
}

// TestConsoleRefreshesAnExpiredSession lets the console's access token
// expire (a 2 s lifetime) and checks that the next view loads anyway: its
// two concurrent calls both get 401, share one refresh (a refresh token
// is single-use; presenting it twice would revoke the session) and retry.
// It also changes the password from the account view (which signs the
// console out) and checks that closed registration offers no sign-up.
func TestConsoleRefreshesAnExpiredSession(t *testing.T) {
	data := filepath.Join(t.TempDir(), "gpt2d.db")
	s := startServe(t, data, []string{"GPT2D_ADMIN_USERNAME=root", "GPT2D_ADMIN_PASSWORD=root-password"},
		"--token-ttl", "2s", "--registration", "closed")
	b := startBrowser(t, s.url)
	tb := b.tabs[0]
	tb.do("open console", chromedp.Navigate(s.url+"/"))
	tb.until("sign-in page", `document.body.dataset.view === 'signin'`)
	if !eval[bool](tb, `document.getElementById('register-form').hidden`) {
		t.Error("sign-up offered while registration is closed")
	}
	tb.signIn("root", "root-password")
	first := eval[string](tb, `JSON.parse(sessionStorage.getItem('gpt2d.session')).access`)
	waitFor(t, func() bool {
		code, _ := s.call(t, "GET", "/users/me", first, "")
		return code == 401
	})

	tb.click("#nav-account") // GET /users/me/usage and /users/me/keys at once
	tb.until("account loaded", `document.body.dataset.view === 'account' && document.querySelectorAll('#usage-chart rect.bar').length === 30`)
	if now := eval[string](tb, `JSON.parse(sessionStorage.getItem('gpt2d.session')).access`); now == first {
		t.Fatal("the access token was not replaced")
	}
	_, audit := s.call(t, "GET", "/admin/audit?limit=1000", s.token(t, "root", "root-password"), "")
	var events []struct{ Action string }
	json.Unmarshal([]byte(audit), &events)
	count := map[string]int{}
	for _, e := range events {
		count[e.Action]++
	}
	if count["token.refresh"] != 1 || count["token.refresh.reuse"] != 0 {
		t.Fatalf("refreshes %d, reuses %d; want one refresh shared by both calls", count["token.refresh"], count["token.refresh.reuse"])
	}

	// Changing the password ends every session, this one included.
	tb.set("#pw-current", "root-password")
	tb.set("#pw-new", "root-password-2")
	tb.set("#pw-confirm", "root-password-2")
	tb.click("#pw-submit")
	tb.until("signed out by the change", `document.body.dataset.view === 'signin' && document.getElementById('notice').textContent.startsWith('Password changed')`)
	tb.signIn("root", "root-password-2")
	tb.clean()
}
