package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"gpt2d/store/pgtest"
	"gpt2d/store/postgres"
)

// replica starts the built binary as `gpt2d serve` on the store at url.
func replica(t *testing.T, url string, extra ...string) *server {
	t.Helper()
	cmd := exec.Command(gpt2dBinary(t), serveArgs(url, extra...)...)
	cmd.Env = append(os.Environ(), "GPT2D_BCRYPT_COST=4")
	return serve(t, cmd)
}

// status is s.call's status only, for brevity.
func (s *server) status(t testing.TB, method, path, token, body string) int {
	t.Helper()
	code, _ := s.call(t, method, path, token, body)
	return code
}

// refusedWithin polls until s answers 401 to token on /users/me and
// returns how long that took after start; a generous deadline only
// catches a missing mechanism.
func refusedWithin(t *testing.T, s *server, token string, start time.Time) time.Duration {
	t.Helper()
	for s.status(t, "GET", "/users/me", token, "") != 401 {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("%s still accepts the token %s after the change", s.url, time.Since(start))
		}
		time.Sleep(time.Millisecond)
	}
	return time.Since(start)
}

// TestReplicasShareOnePostgres runs two built `gpt2d serve` processes on
// two loopback ports against one PostgreSQL database, as behind a load
// balancer: accounts, sessions, keys and revocations made on one hold on
// the other (within the cache's notification delay), and a replica
// killed mid-stream leaves the other serving.
func TestReplicasShareOnePostgres(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a, b := replica(t, url), replica(t, url)

	// A user registered on A logs in on B; tokens are good on both (the
	// signing key lives in the shared database).
	if code, body := a.call(t, "POST", "/users", "", `{"username":"alice","password":"alice-password"}`); code != 200 {
		t.Fatalf("register on A: %d %s", code, body)
	}
	tokB := b.token(t, "alice", "alice-password")
	tokA := a.token(t, "alice", "alice-password")
	for _, s := range []*server{a, b} {
		for _, tok := range []string{tokA, tokB} {
			if code := s.status(t, "GET", "/users/me", tok, ""); code != 200 {
				t.Fatalf("token on %s: %d", s.url, code)
			}
		}
	}
	if code := b.status(t, "POST", "/users", "", `{"username":"Alice","password":"other-password"}`); code != 400 {
		t.Fatalf("registering alice again on B: %d", code)
	}

	// Logout on A: B refuses the token.
	start := time.Now()
	if code := a.status(t, "POST", "/logout", tokA, ""); code != 200 {
		t.Fatalf("logout on A: %d", code)
	}
	t.Logf("logout on A refused on B after %s", refusedWithin(t, b, tokB, start))
	if code := a.status(t, "GET", "/users/me", tokA, ""); code != 401 {
		t.Fatalf("A accepts its own revoked token: %d", code)
	}

	// A key revoked on B fails on A (which had it cached).
	tok := b.token(t, "alice", "alice-password")
	code, body := b.call(t, "POST", "/users/me/keys", tok, `{"name":"ci"}`)
	if code != 201 {
		t.Fatalf("create key: %d %s", code, body)
	}
	var key struct {
		ID  uint64
		Key string
	}
	json.Unmarshal([]byte(body), &key)
	if code := a.status(t, "GET", "/users/me", key.Key, ""); code != 200 {
		t.Fatalf("key on A: %d", code)
	}
	start = time.Now()
	if code := b.status(t, "DELETE", fmt.Sprintf("/users/me/keys/%d", key.ID), tok, ""); code != 204 && code != 200 {
		t.Fatalf("revoke on B: %d", code)
	}
	t.Logf("key revoked on B refused on A after %s", refusedWithin(t, a, key.Key, start))

	// A password change on B ends the sessions held on A.
	tokA = a.token(t, "alice", "alice-password")
	tokB = b.token(t, "alice", "alice-password")
	start = time.Now()
	if code, body := b.call(t, "POST", "/users/me/password", tokB,
		`{"current_password":"alice-password","new_password":"alice-password-2"}`); code != 200 {
		t.Fatalf("password change on B: %d %s", code, body)
	}
	t.Logf("password change on B refused on A after %s", refusedWithin(t, a, tokA, start))
	a.token(t, "alice", "alice-password-2")

	// kill -9 of A while it streams: B keeps serving, and the store
	// takes new writes and reads back whole.
	tokA = a.token(t, "alice", "alice-password-2")
	req, _ := http.NewRequest("POST", a.url+"/generate", strings.NewReader(`{"prompt":"Once upon a time","max_new_tokens":100,"stream":true}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tokA)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, one); err != nil {
		t.Fatal(err)
	}
	a.cmd.Process.Signal(syscall.SIGKILL)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	a.cmd.Wait()
	tokB = b.token(t, "alice", "alice-password-2")
	if code, body := b.call(t, "POST", "/generate", tokB, `{"prompt":"Still here","max_new_tokens":5}`); code != 200 {
		t.Fatalf("B after A was killed: %d %s", code, body)
	}
	if code := b.status(t, "POST", "/users", "", `{"username":"bob","password":"bob-password"}`); code != 200 {
		t.Fatalf("register on B after A was killed: %d", code)
	}
	c := replica(t, url) // a replacement for A, on the same database
	c.token(t, "bob", "bob-password")
	if code := c.status(t, "GET", "/users/me", tokB, ""); code != 200 {
		t.Fatalf("B's token on the replacement: %d", code)
	}
}

// TestReplicasStartingTogetherMigrateOnce starts two replicas at the same
// moment on an empty database: both serve, and each schema step was
// applied once.
func TestReplicasStartingTogetherMigrateOnce(t *testing.T) {
	url := pgtest.NewDatabase(t)
	bin := gpt2dBinary(t)
	cmds := make([]*exec.Cmd, 2)
	for i := range cmds {
		cmds[i] = exec.Command(bin, serveArgs(url)...)
		cmds[i].Env = append(os.Environ(), "GPT2D_BCRYPT_COST=4")
	}
	servers := make([]*server, 2)
	var wg sync.WaitGroup
	for i := range cmds {
		wg.Add(1)
		// serve's t.Fatal ends only this goroutine (deferred Done runs);
		// the nil server is reported below.
		go func() { defer wg.Done(); servers[i] = serve(t, cmds[i]) }()
	}
	wg.Wait()
	for i, s := range servers {
		if s == nil {
			t.Fatalf("replica %d did not start", i)
		}
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var rows, versions int
	if err := conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT version) FROM gpt2d_schema`).Scan(&rows, &versions); err != nil {
		t.Fatal(err)
	}
	if rows != postgres.SchemaVersion || versions != postgres.SchemaVersion {
		t.Fatalf("gpt2d_schema: %d rows, %d versions; want %d each", rows, versions, postgres.SchemaVersion)
	}
	migrated := 0
	for _, s := range servers {
		migrated += strings.Count(s.logs.String(), "store schema migrated")
	}
	if migrated != postgres.SchemaVersion {
		t.Fatalf("%d migration steps logged by the two replicas, want %d", migrated, postgres.SchemaVersion)
	}
}

// TestStoreCopyMovesAnInstall copies a bbolt store into PostgreSQL with
// `gpt2d store copy` (twice: it is idempotent), then serves from the copy:
// the user's password, API key and usage came along.
func TestStoreCopyMovesAnInstall(t *testing.T) {
	data := filepath.Join(t.TempDir(), "gpt2d.db")
	s := startServe(t, data, nil)
	if code, body := s.call(t, "POST", "/users", "", `{"username":"carol","password":"carol-password"}`); code != 200 {
		t.Fatalf("register: %d %s", code, body)
	}
	tok := s.token(t, "carol", "carol-password")
	_, body := s.call(t, "POST", "/users/me/keys", tok, `{"name":"moving"}`)
	var key struct{ Key string }
	json.Unmarshal([]byte(body), &key)
	if code := s.status(t, "POST", "/generate", key.Key, `{"prompt":"Before the move","max_new_tokens":3}`); code != 200 {
		t.Fatalf("generate: %d", code)
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()

	url := pgtest.NewDatabase(t)
	for round := range 2 {
		out, err := exec.Command(gpt2dBinary(t), "store", "copy", "--from", data, "--to", url).CombinedOutput()
		if err != nil {
			t.Fatalf("store copy (run %d): %v\n%s", round+1, err, out)
		}
		for _, want := range []string{"users", "api_keys", "audit", "usage", "copied and verified", "signing key"} {
			if !strings.Contains(string(out), want) {
				t.Fatalf("store copy output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(string(out), "DIFFERS") {
			t.Fatalf("store copy (run %d):\n%s", round+1, out)
		}
		if round == 0 {
			t.Logf("store copy:\n%s", out)
		}
	}

	p := replica(t, url)
	if code := p.status(t, "GET", "/users/me", tok, ""); code != 200 {
		t.Fatalf("access token issued before the move: %d (the signing key did not move)", code)
	}
	tok = p.token(t, "carol", "carol-password")
	if code := p.status(t, "GET", "/users/me", key.Key, ""); code != 200 {
		t.Fatalf("copied API key: %d", code)
	}
	code, usage := p.call(t, "GET", "/users/me/usage", tok, "")
	if code != 200 || !strings.Contains(usage, `"requests":1`) {
		t.Fatalf("copied usage: %d %s", code, usage)
	}
}

// guesses makes n wrong password guesses at user, request i on
// servers[i%len(servers)], all at once or one after another, and returns
// how many were evaluated (401) and how many refused unevaluated (429).
func guesses(t *testing.T, servers []*server, user string, n int, concurrent bool) (evaluated, refused int) {
	t.Helper()
	codes := make([]int, n)
	try := func(i int) {
		s := servers[i%len(servers)]
		resp, err := http.PostForm(s.url+"/token", neturl.Values{"username": {user}, "password": {fmt.Sprintf("wrong-%d", i)}})
		if err != nil {
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		codes[i] = resp.StatusCode
	}
	if concurrent {
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() { defer wg.Done(); <-gate; try(i) }()
		}
		close(gate)
		wg.Wait()
	} else {
		for i := range n {
			try(i)
		}
	}
	for i, c := range codes {
		switch c {
		case 401:
			evaluated++
		case 429:
			refused++
		default:
			t.Fatalf("guess %d answered %d", i, c)
		}
	}
	return evaluated, refused
}

// TestReplicasShareLoginThrottles guesses a password 30 times one after
// another on one replica, then 30 times at once split over two replicas
// of one database: the guesses evaluated are the same number — the
// throttle's counters live in the database, not in each process.
func TestReplicasShareLoginThrottles(t *testing.T) {
	url := pgtest.NewDatabase(t)
	a, b := replica(t, url), replica(t, url)
	for _, name := range []string{"victim1", "victim2"} {
		if code := a.status(t, "POST", "/users", "", `{"username":"`+name+`","password":"victim-secret-77"}`); code != 200 {
			t.Fatalf("register %s: %d", name, code)
		}
	}
	const n = 30
	seq, _ := guesses(t, []*server{a}, "victim1", n, false)
	conc, refused := guesses(t, []*server{a, b}, "victim2", n, true)
	t.Logf("%d wrong guesses: %d evaluated one after another on one replica, %d evaluated at once over two (%d refused)", n, seq, conc, refused)
	if seq == 0 || seq == n || conc != seq {
		t.Fatalf("evaluated %d sequential guesses on one replica and %d concurrent over two; want equal, and fewer than %d", seq, conc, n)
	}
}

// generations posts n /generate requests of tok with body at once, request
// i on servers[i%len(servers)], and returns the count of each status.
func generations(t *testing.T, servers []*server, tok, body string, n int) map[int]int {
	t.Helper()
	codes := make([]int, n)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	client := &http.Client{Timeout: 2 * time.Minute}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			req, _ := http.NewRequest("POST", servers[i%len(servers)].url+"/generate", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+tok)
			resp, err := client.Do(req)
			if err != nil {
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codes[i] = resp.StatusCode
		}()
	}
	close(gate)
	wg.Wait()
	count := map[int]int{}
	for _, c := range codes {
		count[c]++
	}
	return count
}

// TestReplicasShareRequestRatesAndTokenQuotas sends 30 concurrent
// generations split over two replicas of one database for a user limited
// to 10 requests a minute, and for a user with a 100-token daily quota:
// exactly 10 are admitted, and the quota is overshot by less than one
// request's reservation — what one replica alone would allow.
func TestReplicasShareRequestRatesAndTokenQuotas(t *testing.T) {
	url := pgtest.NewDatabase(t)
	flags := []string{"--user-sequences", "-1", "--queue", "64"}
	cmd := exec.Command(gpt2dBinary(t), serveArgs(url, flags...)...)
	cmd.Env = append(os.Environ(), "GPT2D_BCRYPT_COST=4", "GPT2D_ADMIN_USERNAME=root", "GPT2D_ADMIN_PASSWORD=root-password-1")
	a := serve(t, cmd)
	b := replica(t, url, flags...)
	admin := a.token(t, "root", "root-password-1")
	limit := func(name, limits string) string {
		code, body := a.call(t, "POST", "/users", "", `{"username":"`+name+`","password":"`+name+`-password"}`)
		if code != 200 {
			t.Fatalf("register %s: %d %s", name, code, body)
		}
		var u struct{ ID uint64 }
		json.Unmarshal([]byte(body), &u)
		if code, body := a.call(t, "PUT", fmt.Sprintf("/admin/users/%d/limits", u.ID), admin, limits); code != 200 {
			t.Fatalf("limits of %s: %d %s", name, code, body)
		}
		return b.token(t, name, name+"-password")
	}

	rated := limit("rated", `{"requests_per_minute":10}`)
	codes := generations(t, []*server{a, b}, rated, `{"prompt":"Hello","max_new_tokens":1}`, 30)
	t.Logf("30 concurrent requests over two replicas, 10 a minute allowed: %v", codes)
	if codes[200] != 10 || codes[429] != 20 {
		t.Fatalf("answers %v, want 10 × 200 and 20 × 429", codes)
	}

	const quota, maxNew = 100, 40
	quoted := limit("quoted", fmt.Sprintf(`{"tokens_per_day":%d}`, quota))
	codes = generations(t, []*server{a, b}, quoted, fmt.Sprintf(`{"prompt":"Hello","max_new_tokens":%d}`, maxNew), 30)
	code, body := b.call(t, "GET", "/users/me/usage", quoted, "")
	var usage struct {
		Total struct {
			TotalTokens int64 `json:"total_tokens"`
		}
	}
	if code != 200 || json.Unmarshal([]byte(body), &usage) != nil {
		t.Fatalf("usage: %d %s", code, body)
	}
	spent := usage.Total.TotalTokens
	t.Logf("30 concurrent requests over two replicas against a %d-token quota (≤ %d new tokens each): %v, %d tokens spent, overshoot %d",
		quota, maxNew, codes, spent, max(spent-quota, 0))
	// One reservation is the prompt (one or two tokens) plus maxNew.
	if codes[200] == 0 || spent >= quota+maxNew+2 {
		t.Fatalf("%d tokens spent against a quota of %d: more than one request's reservation over", spent, quota)
	}
}

// TestStoreMigrateAndOneShotCommandsOnPostgres migrates an empty database
// with `gpt2d store migrate` (twice: the second finds nothing to do), then
// runs the one-shot commands against it: users create and list work on
// the shared database, backup points to pg_dump.
func TestStoreMigrateAndOneShotCommandsOnPostgres(t *testing.T) {
	url := pgtest.NewDatabase(t)
	bin := gpt2dBinary(t)
	want := fmt.Sprintf("schema version %d", postgres.SchemaVersion)
	for run := range 2 {
		out, err := exec.Command(bin, "store", "migrate", "--store", url).CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Fatalf("store migrate (run %d): %v\n%s", run+1, err, out)
		}
		steps := []int{postgres.SchemaVersion, 0}[run]
		if migrated := strings.Count(string(out), "store schema migrated"); migrated != steps {
			t.Fatalf("store migrate (run %d) applied %d steps:\n%s", run+1, migrated, out)
		}
	}
	create := exec.Command(bin, "users", "create", "--store", url, "--username", "dora", "--role", "admin")
	create.Env = append(os.Environ(), "GPT2D_BCRYPT_COST=4")
	create.Stdin = strings.NewReader("dora-password-77\n")
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("users create: %v\n%s", err, out)
	}
	if out, err := exec.Command(bin, "users", "list", "--store", url).CombinedOutput(); err != nil || !strings.Contains(string(out), "dora") {
		t.Fatalf("users list: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "backup", "--store", url, filepath.Join(t.TempDir(), "x.db")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "pg_dump") {
		t.Fatalf("backup of a PostgreSQL store: %v\n%s", err, out)
	}
}
