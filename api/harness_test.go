package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"gpt2d/auth"
	"gpt2d/gpt2"
	"gpt2d/store"
	"gpt2d/store/pgtest"
)

// engine is the real GPT-2 engine on the tiny random-weight fixture,
// loaded once for the package's tests.
var engine *gpt2.Engine

func TestMain(m *testing.M) {
	model, err := gpt2.Load("../testdata/gpt2-tiny")
	if err != nil {
		panic(err)
	}
	engine = gpt2.NewEngine(model, gpt2.EngineConfig{})
	code := pgtest.Main(m)
	engine.Close()
	model.Close()
	os.Exit(code)
}

// testClock is an injectable clock shared by auth and api. It follows
// real time, shifted by Advance, unless frozen.
type testClock struct {
	mu     sync.Mutex
	off    time.Duration
	frozen time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen.IsZero() {
		return c.frozen.Add(c.off)
	}
	return time.Now().Add(c.off)
}

// Freeze stops the clock at the current time, so that tests that make
// many requests see no wait run out meanwhile.
func (c *testClock) Freeze() {
	now := c.Now()
	c.mu.Lock()
	c.frozen, c.off = now, 0
	c.mu.Unlock()
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// syncBuffer collects log output from concurrent handlers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer is a Server on a loopback port with a real bbolt file.
type testServer struct {
	t     testing.TB
	url   string
	srv   *Server
	db    store.Store
	auth  *auth.Service
	clock *testClock
	logs  *syncBuffer
	http  *http.Client
	// bodies holds every response body, to search for leaked secrets.
	mu     sync.Mutex
	bodies []string
}

type option func(*Config, *auth.Config)

func start(t testing.TB, opts ...option) *testServer {
	t.Helper()
	clk := &testClock{}
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	acfg := auth.Config{BcryptCost: bcrypt.MinCost, Now: clk.Now}
	cfg := Config{Logger: logger, Now: clk.Now,
		// Generous by default so unrelated tests on one IP are not throttled.
		RegisterThrottle: auth.ThrottleConfig{FreeFailures: 1000}, SignupBudget: auth.BudgetConfig{Max: -1}}
	for _, o := range opts {
		o(&cfg, &acfg)
	}
	if cfg.Store == nil { // an option may bring its own
		cfg.Store = openTestStore(t)
	}
	db := cfg.Store
	if acfg.Throttle == (auth.LoginThrottleConfig{}) {
		generous := auth.ThrottleConfig{FreeFailures: 1000}
		acfg.Throttle = auth.LoginThrottleConfig{Pair: generous, Address: generous, Username: generous}
	}
	shareLimits(&cfg, &acfg)
	svc, err := auth.New(db, []byte(strings.Repeat("t", 32)), acfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Auth = svc
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.SetGenerator(engine)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	ts := &testServer{t: t, url: "http://" + ln.Addr().String(), srv: srv, db: db, auth: svc, clock: clk, logs: logs,
		http: &http.Client{Timeout: 30 * time.Second}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		db.Close()
	})
	return ts
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

func (r response) detail(t *testing.T) any { return r.json(t)["detail"] }

func (ts *testServer) do(method, path, token, contentType string, body io.Reader) response {
	ts.t.Helper()
	req, err := http.NewRequest(method, ts.url+path, body)
	if err != nil {
		ts.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := ts.http.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	ts.mu.Lock()
	ts.bodies = append(ts.bodies, string(b))
	ts.mu.Unlock()
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func (ts *testServer) postJSON(path, token string, v any) response {
	ts.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		ts.t.Fatal(err)
	}
	return ts.do("POST", path, token, "application/json", bytes.NewReader(b))
}

func (ts *testServer) postForm(path string, form url.Values) response {
	ts.t.Helper()
	return ts.do("POST", path, "", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
}

func (ts *testServer) get(path, token string) response {
	ts.t.Helper()
	return ts.do("GET", path, token, "", nil)
}

// register creates a user through the API and fails the test otherwise.
func (ts *testServer) register(username, password, role, token string) map[string]any {
	ts.t.Helper()
	body := map[string]any{"username": username, "password": password}
	if role != "" {
		body["role"] = role
	}
	r := ts.postJSON("/users", token, body)
	if r.status != 200 {
		ts.t.Fatalf("register %s: %d %s", username, r.status, r.body)
	}
	return r.json(ts.t)
}

// login returns an access token and fails the test otherwise.
func (ts *testServer) login(username, password string) string {
	ts.t.Helper()
	tok, _ := ts.loginPair(username, password)
	return tok
}

func (ts *testServer) loginPair(username, password string) (access, refresh string) {
	ts.t.Helper()
	r := ts.postForm("/token", url.Values{"username": {username}, "password": {password}})
	if r.status != 200 {
		ts.t.Fatalf("login %s: %d %s", username, r.status, r.body)
	}
	m := r.json(ts.t)
	return m["access_token"].(string), m["refresh_token"].(string)
}

// admin creates an admin directly in the store (as `gpt2d users create`
// does) and returns its token.
func (ts *testServer) admin(username string) string {
	ts.t.Helper()
	if _, err := ts.auth.Register(username, "admin-password", store.RoleAdmin); err != nil {
		ts.t.Fatal(err)
	}
	return ts.login(username, "admin-password")
}

func wantStatus(t *testing.T, r response, status int) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d; body %s", r.status, status, r.body)
	}
}

func wantDetail(t *testing.T, r response, status int, detail string) {
	t.Helper()
	wantStatus(t, r, status)
	if got := r.detail(t); got != detail {
		t.Fatalf("detail %q, want %q", got, detail)
	}
}

func wantBearerChallenge(t *testing.T, r response) {
	t.Helper()
	if got := r.header.Get("WWW-Authenticate"); got != "Bearer" {
		t.Fatalf("WWW-Authenticate = %q, want Bearer", got)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }
