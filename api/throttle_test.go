package api

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"gpt2d/auth"
	"gpt2d/store"
)

// defaultThrottle runs the server with the production login throttle
// (the harness is generous otherwise), slowing by 1 ms instead of 2 s.
func defaultThrottle(_ *Config, a *auth.Config) {
	a.Throttle = auth.LoginThrottleConfig{MaxSlowdown: time.Millisecond}
}

// behindProxy trusts X-Forwarded-For from loopback, so that tests can
// speak for many client addresses.
func behindProxy(c *Config, _ *auth.Config) {
	c.ProxyHeader = "X-Forwarded-For"
	c.TrustedProxies = []string{"127.0.0.1", "10.0.0.0/8"}
}

// bcryptCounter counts password comparisons: how many attempts were
// evaluated.
type bcryptCounter struct{ n atomic.Int64 }

func (b *bcryptCounter) option(_ *Config, a *auth.Config) {
	a.Compare = func(hash, password []byte) error {
		b.n.Add(1)
		return bcrypt.CompareHashAndPassword(hash, password)
	}
}

// loginFrom posts a login form with X-Forwarded-For set to forwarded (if
// not empty).
func (ts *testServer) loginFrom(forwarded []string, username, password string) response {
	ts.t.Helper()
	form := url.Values{"username": {username}, "password": {password}}.Encode()
	req, err := http.NewRequest("POST", ts.url+"/token", strings.NewReader(form))
	if err != nil {
		ts.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for _, f := range forwarded {
		req.Header.Add("X-Forwarded-For", f)
	}
	resp, err := ts.http.Do(req)
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func from(addr string) []string { return []string{addr} }

// guess makes n wrong guesses (the last one right, if right is set) at
// victim's password, sequentially or all at once, and returns how many
// were evaluated and whether the right one got in.
func guess(t *testing.T, n int, concurrent, right bool) (evaluated int64, in bool) {
	var cmp bcryptCounter
	// All n guesses are in flight at once, from one address: the
	// per-address connection cap (conns_test.go tests it) would refuse
	// some of them at the socket, which is not what this measures.
	noConnCap := func(c *Config, _ *auth.Config) { c.MaxConnsPerIP = -1 }
	ts := start(t, defaultThrottle, cmp.option, noConnCap)
	ts.clock.Freeze()
	ts.register("victim", "victim-secret-77", "", "")
	statuses := make([]int, n)
	attempt := func(i int) {
		p := fmt.Sprintf("wrong-guess-%d", i)
		if right && i == n-1 {
			p = "victim-secret-77"
		}
		statuses[i] = ts.postForm("/token", url.Values{"username": {"victim"}, "password": {p}}).status
	}
	if concurrent {
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				attempt(i)
			}()
		}
		close(gate)
		wg.Wait()
	} else {
		for i := range n {
			attempt(i)
		}
	}
	return cmp.n.Load(), statuses[n-1] == 200
}

func TestConcurrentGuessesCostWhatSequentialOnesCost(t *testing.T) {
	const n = 300
	seq, _ := guess(t, n, false, false)
	conc, _ := guess(t, n, true, false)
	t.Logf("%d wrong guesses from one address: %d evaluated one after another, %d evaluated at once", n, seq, conc)
	if seq != 6 || conc != seq {
		t.Fatalf("evaluated %d sequential and %d concurrent guesses, want 6 (5 free failures + 1) both", seq, conc)
	}
	evaluated, in := guess(t, n, true, true)
	t.Logf("%d concurrent wrong-then-right guesses: %d evaluated, right one admitted: %v", n, evaluated, in)
	if evaluated > 12 {
		t.Fatalf("%d of %d concurrent guesses evaluated", evaluated, n)
	}
}

func TestOwnerIsNotLockedOut(t *testing.T) {
	ts := start(t, defaultThrottle, behindProxy)
	ts.clock.Freeze()
	ops := ts.admin("ops")
	ts.register("root", "root-secret-5150", "", "")

	// Six wrong passwords from one address stop that address only.
	for range 6 {
		wantStatus(t, ts.loginFrom(from("203.0.113.1"), "root", "wrong-password"), 401)
	}
	r := ts.loginFrom(from("203.0.113.1"), "root", "root-secret-5150")
	wantStatus(t, r, 429)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	wantStatus(t, ts.loginFrom(from("198.51.100.2"), "root", "root-secret-5150"), 200)

	// A distributed attack puts root over its budget: an address that
	// failed for it now waits after each failure ...
	for i := range 25 {
		wantStatus(t, ts.loginFrom(from(fmt.Sprintf("203.0.113.%d", 10+i)), "root", "wrong-password"), 401)
	}
	wantStatus(t, ts.loginFrom(from("203.0.113.10"), "root", "root-secret-5150"), 429)
	// ... while the owner, from an address with no failures, is only
	// slowed.
	wantStatus(t, ts.loginFrom(from("192.0.2.50"), "root", "root-secret-5150"), 200)
	m := scrape(t, ts, ops)
	if m.value(t, "gpt2d_login_slowed_total") < 1 || m.value(t, "gpt2d_login_throttled_pair_total") < 2 {
		t.Fatalf("slowed %v, throttled %v", m.value(t, "gpt2d_login_slowed_total"), m.value(t, "gpt2d_login_throttled_pair_total"))
	}
}

func TestOneAddressIsSlowedOnlyAfterTensOfFailures(t *testing.T) {
	ts := start(t, defaultThrottle) // every client is 127.0.0.1, as behind a NAT
	ts.clock.Freeze()
	ts.register("alice", "alice-secret-42", "", "")
	ts.register("bob", "bob-secret-4242", "", "")
	for range 6 {
		wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {"typo"}}), 401)
	}
	wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {"alice-secret-42"}}), 429)
	ts.login("bob", "bob-secret-4242") // six typos by one user lock out no one else

	// Spraying guesses over many usernames from one address is slowed,
	// but only after tens of failures.
	failures := 6
	for i := 0; ; i++ {
		r := ts.postForm("/token", url.Values{"username": {fmt.Sprintf("user%d", i)}, "password": {"guess"}})
		if r.status == 429 {
			break
		}
		wantStatus(t, r, 401)
		if failures++; failures > 100 {
			t.Fatal("an address sprayed 100 usernames unthrottled")
		}
	}
	if failures < 30 {
		t.Fatalf("address throttled after %d failures, want tens", failures)
	}
}

func TestClientAddressIsTheRightmostUntrustedOne(t *testing.T) {
	ts := start(t, behindProxy)
	tests := []struct {
		name      string
		forwarded []string
		want      string
	}{
		{"one proxy", from("198.51.100.1"), "198.51.100.1"},
		{"client-written value on the left", from("6.6.6.6, 198.51.100.2"), "198.51.100.2"},
		{"trusted hop skipped", from("6.6.6.6, 198.51.100.3, 10.1.2.3"), "198.51.100.3"},
		{"two header lines", []string{"6.6.6.6", "198.51.100.4"}, "198.51.100.4"},
		{"address with port", from("[2001:db8::7]:443"), "2001:db8::7"},
		{"not an address", from("<script>"), "127.0.0.1"},
		{"garbage at the right", from("198.51.100.5, not-an-ip"), "127.0.0.1"},
		{"only trusted hops", from("10.0.0.1"), "127.0.0.1"},
		{"no header", nil, "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantStatus(t, ts.loginFrom(tt.forwarded, "nobody", "wrong-password"), 401)
			events, err := ts.db.ListAudit(0, 1)
			if err != nil || len(events) != 1 || events[0].Action != "login.failure" {
				t.Fatalf("audit: %v %v", events, err)
			}
			if events[0].IP != tt.want {
				t.Fatalf("recorded address %q, want %q", events[0].IP, tt.want)
			}
		})
	}

	// Spoofed left-most values do not escape the throttle.
	ts2 := start(t, behindProxy, defaultThrottle)
	ts2.clock.Freeze()
	statuses := map[int]int{}
	for i := range 15 {
		statuses[ts2.loginFrom(from(fmt.Sprintf("6.6.6.%d, 198.51.100.9", i)), "victim", "guess").status]++
	}
	if statuses[401] != 6 || statuses[429] != 9 {
		t.Fatalf("15 spoofed guesses: %v, want 6 evaluated and 9 refused", statuses)
	}

	// A header from an untrusted peer is ignored.
	ts3 := start(t, func(c *Config, _ *auth.Config) {
		c.ProxyHeader = "X-Forwarded-For"
		c.TrustedProxies = []string{"10.0.0.1"}
	})
	ts3.loginFrom(from("198.51.100.1"), "nobody", "wrong-password")
	if events, _ := ts3.db.ListAudit(0, 1); len(events) != 1 || events[0].IP != "127.0.0.1" {
		t.Fatalf("untrusted peer's header believed: %v", events)
	}
}

func TestSignupsArePerAddressBudgeted(t *testing.T) {
	ts := start(t, behindProxy, func(c *Config, _ *auth.Config) { c.SignupBudget = auth.BudgetConfig{Max: 3, Window: time.Hour} })
	admin := ts.admin("root")
	const n = 20
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = ts.postJSON("/users", "", map[string]any{"username": fmt.Sprintf("bot%d", i), "password": "bot-secret-9988"}).status
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[200] != 3 || count[429] != n-3 {
		t.Fatalf("statuses %v, want 3 accounts and %d refusals", count, n-3)
	}
	// An admin is not budgeted.
	for i := range 5 {
		ts.register(fmt.Sprintf("staff%d", i), "staff-secret-9988", "", admin)
	}
}

func TestRefusedAndFailedLoginsDoNotGrowStoreOrLog(t *testing.T) {
	ts := start(t, defaultThrottle)
	ts.clock.Freeze()
	admin := ts.admin("root")
	sizeBefore := storeSize(t, ts.db)
	eventsBefore, _ := ts.db.ListAudit(0, 1)

	const n = 600
	huge := strings.Repeat("u", 60<<10)
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				ts.postForm("/token", url.Values{"username": {fmt.Sprintf("%s%d", huge, i)}, "password": {"guess"}})
			}
		}()
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()

	sizeAfter := storeSize(t, ts.db)
	events, err := ts.db.ListAudit(0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	added := 0
	for _, e := range events {
		if e.Seq <= eventsBefore[0].Seq {
			continue
		}
		added++
		if len(e.Target) > 4*maxLoggedChars {
			t.Fatalf("audit target of %d bytes", len(e.Target))
		}
	}
	t.Logf("%d failed logins with 60 KB usernames: store %d → %d bytes, %d audit events, log %d bytes",
		n, sizeBefore, sizeAfter, added, len(ts.logs.String()))
	// About 31 evaluated failures (the address budget) and one summary per
	// minute of refusals; never one event per refused attempt.
	if added > 40 {
		t.Fatalf("%d audit events for %d failed logins", added, n)
	}
	if strings.Contains(ts.logs.String(), strings.Repeat("u", 100)) {
		t.Fatal("a long username reached the log")
	}
	if m := scrape(t, ts, admin); m.value(t, "gpt2d_login_throttled_address_total") < n-40 {
		t.Fatalf("refusals not counted: %v", m.value(t, "gpt2d_login_throttled_address_total"))
	}

	// A password typed into the username field is never logged in full.
	ts.postForm("/token", url.Values{"username": {"Correct-Horse-Battery"}, "password": {"x"}})
	ts.clock.Advance(time.Hour)
	ts.postForm("/token", url.Values{"username": {"Correct-Horse-Battery"}, "password": {"x"}})
	events, _ = ts.db.ListAudit(0, 5)
	for _, e := range events {
		if strings.Contains(e.Target, "Horse") {
			t.Fatalf("audit target %q", e.Target)
		}
	}
	if strings.Contains(ts.logs.String(), "Horse") {
		t.Fatal("a would-be password reached the log")
	}
	// A real account's name is kept.
	ts.postForm("/token", url.Values{"username": {"root"}, "password": {"x"}})
	if events, _ = ts.db.ListAudit(0, 1); events[0].Target != "root" {
		t.Fatalf("target %q, want root", events[0].Target)
	}
	_ = store.Event{}
}
