package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gpt2d/auth"
	"gpt2d/store"
	"gpt2d/store/pgtest"
)

// asMainEnv makes the test binary behave as the gpt2d command, so the
// tests run real processes with real signals.
const asMainEnv = "GPT2D_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		main()
		os.Exit(0)
	}
	code := pgtest.Main(m)
	removeBuilt()
	os.Exit(code)
}

// gpt2d prepares the command `gpt2d args...` with extra environment.
func gpt2d(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(cleanEnv(), append([]string{asMainEnv + "=1", "GPT2D_BCRYPT_COST=4"}, env...)...)
	return cmd
}

// server is a running `gpt2d serve` child.
type server struct {
	cmd  *exec.Cmd
	url  string
	logs *lines
}

type lines struct {
	mu sync.Mutex
	l  []string
}

func (l *lines) add(s string) { l.mu.Lock(); l.l = append(l.l, s); l.mu.Unlock() }
func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.l, "\n")
}

func startServe(t *testing.T, data string, env []string, extra ...string) *server {
	t.Helper()
	return serve(t, gpt2d(env, serveArgs(data, extra...)...))
}

// serveArgs are the arguments of `gpt2d serve` on the tiny model, a free
// loopback port and the store data.
func serveArgs(data string, extra ...string) []string {
	return append([]string{"serve", "--model", "../../testdata/gpt2-tiny", "--addr", "127.0.0.1:0", "--data", data}, extra...)
}

// serve starts cmd, a `gpt2d serve`, and waits until it listens and its
// model is loaded.
func serve(t testing.TB, cmd *exec.Cmd) *server {
	t.Helper()
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, logs: &lines{}}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.logs.add(line)
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "listening" {
				addr <- m["addr"].(string)
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			t.Fatalf("serve exited:\n%s", s.logs)
		}
		s.url = "http://" + a
	case <-time.After(time.Minute):
		t.Fatalf("serve did not start:\n%s", s.logs)
	}
	// /health is 503 while the model loads, then 200.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := http.Get(s.url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
			if resp.StatusCode != 503 {
				t.Fatalf("/health = %d", resp.StatusCode)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("model never loaded:\n%s", s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

func (s *server) token(t testing.TB, user, pass string) string {
	t.Helper()
	resp, err := http.PostForm(s.url+"/token", url.Values{"username": {user}, "password": {pass}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	if resp.StatusCode != 200 {
		t.Fatalf("login %s: %d %v", user, resp.StatusCode, m)
	}
	return m["access_token"].(string)
}

func (s *server) call(t testing.TB, method, path, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServeBootstrapsAdminServesAndDrainsOnSIGTERM(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data", "gpt2d.db")
	env := []string{"GPT2D_ADMIN_USERNAME=root", "GPT2D_ADMIN_PASSWORD=root-password"}
	// One user queues several generations here: lift the per-user cap.
	s := startServe(t, data, env, "--slots", "1", "--shutdown-timeout", "20s", "--user-sequences", "8")

	admin := s.token(t, "root", "root-password")
	if code, body := s.call(t, "POST", "/users", "", `{"username":"alice","password":"alice-password"}`); code != 200 {
		t.Fatalf("register: %d %s", code, body)
	}
	alice := s.token(t, "alice", "alice-password")
	if code, body := s.call(t, "POST", "/generate", alice, `{"prompt":"Hello there","max_length":20}`); code != 200 || !strings.Contains(body, `"generated_text":"Hello there`) {
		t.Fatalf("generate: %d %s", code, body)
	}
	if code, body := s.call(t, "GET", "/admin/users", admin, ""); code != 200 || !strings.Contains(body, "alice") {
		t.Fatalf("admin users: %d %s", code, body)
	}

	// The store is locked by the server: backup goes through the API.
	backup := filepath.Join(t.TempDir(), "live.db")
	cmd := gpt2d([]string{"GPT2D_TOKEN=" + admin}, "backup", "--url", s.url, backup)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("backup --url: %v\n%s", err, out)
	}
	if out, err := gpt2d(nil, "backup", "--data", data, filepath.Join(t.TempDir(), "x.db")).CombinedOutput(); err == nil || !strings.Contains(string(out), "--url") {
		t.Fatalf("direct backup of a live store: %v %s", err, out)
	}

	// Generations in flight when SIGTERM arrives all complete. A request
	// the server had not accepted yet may be refused; none may be cut off.
	const n = 6
	type outcome struct {
		code int
		err  error
	}
	outcomes := make(chan outcome, n)
	client := &http.Client{Timeout: time.Minute}
	for range n {
		go func() {
			req, _ := http.NewRequest("POST", s.url+"/generate", strings.NewReader(`{"prompt":"Drain me","max_length":120}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+alice)
			resp, err := client.Do(req)
			if err != nil {
				outcomes <- outcome{err: err}
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			outcomes <- outcome{code: resp.StatusCode}
		}()
	}
	inFlight := 0
	waitFor(t, func() bool {
		var h struct{ Active, Queued int }
		_, body := s.call(t, "GET", "/health", "", "")
		json.Unmarshal([]byte(body), &h)
		inFlight = h.Active + h.Queued
		return h.Queued > 0
	})
	s.cmd.Process.Signal(syscall.SIGTERM)
	served := 0
	for range n {
		switch o := <-outcomes; {
		case o.err != nil:
			t.Logf("request not accepted before shutdown: %v", o.err)
		case o.code != 200:
			t.Errorf("in-flight generation answered %d", o.code)
		default:
			served++
		}
	}
	if served < inFlight {
		t.Errorf("%d generations were in flight at SIGTERM, %d completed", inFlight, served)
	}
	if err := s.cmd.Wait(); err != nil {
		t.Fatalf("serve exit: %v\n%s", err, s.logs)
	}
	if !strings.Contains(s.logs.String(), `"msg":"stopped"`) {
		t.Fatalf("no clean stop in logs:\n%s", s.logs)
	}
	if strings.Contains(s.logs.String(), "root-password") || strings.Contains(s.logs.String(), "alice-password") {
		t.Fatal("a password reached the log")
	}

	for _, path := range []string{data, backup} {
		db, err := store.Open(path, store.Options{ReadOnly: true})
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, name := range []string{"root", "alice"} {
			if _, err := db.UserByUsername(name); err != nil {
				t.Errorf("%s: %s missing: %v", path, name, err)
			}
		}
		db.Close()
	}
}

// waitFor polls cond until it holds. The bound only guards against a
// hang: CI shares two cores between the race detector, a browser and
// other tests.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition never held")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestTokensSurviveRestartWithStoredKey(t *testing.T) {
	data := filepath.Join(t.TempDir(), "gpt2d.db")
	s := startServe(t, data, []string{"GPT2D_ADMIN_USERNAME=root", "GPT2D_ADMIN_PASSWORD=root-password"})
	tok := s.token(t, "root", "root-password")
	s.cmd.Process.Signal(syscall.SIGTERM)
	s.cmd.Wait()
	s = startServe(t, data, nil)
	if code, body := s.call(t, "GET", "/users/me", tok, ""); code != 200 {
		t.Fatalf("token after restart: %d %s", code, body)
	}
}

func TestUsersCreateReadsPasswordFromStdinNotArgv(t *testing.T) {
	data := filepath.Join(t.TempDir(), "gpt2d.db")
	create := func(stdin, username, role string) (string, error) {
		cmd := gpt2d(nil, "users", "create", "--data", data, "--username", username, "--role", role)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := create("first-admin-pw\n", "boss", "admin"); err != nil || !strings.Contains(out, `created admin "boss"`) {
		t.Fatalf("create: %v %s", err, out)
	}
	if out, err := create("short\n", "weak", "user"); err == nil || !strings.Contains(out, "at least 8 characters") {
		t.Fatalf("weak password accepted: %s", out)
	}
	if out, err := create("", "nopass", "user"); err == nil {
		t.Fatalf("empty stdin accepted: %s", out)
	}
	if out, err := create("another-password\n", "boss", "user"); err == nil {
		t.Fatalf("duplicate accepted: %s", out)
	}
	out, err := gpt2d(nil, "users", "list", "--data", data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "boss") || strings.Contains(string(out), "weak") {
		t.Fatalf("list: %v\n%s", err, out)
	}

	db, err := store.Open(data, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	svc, _ := auth.New(db, []byte(strings.Repeat("k", 32)), auth.Config{BcryptCost: 4})
	if u, err := svc.Login(context.Background(), "127.0.0.1", "boss", "first-admin-pw"); err != nil || u.Role != store.RoleAdmin {
		t.Fatalf("login as created admin: %v", err)
	}
}

func TestBackupOfStoppedStore(t *testing.T) {
	data := filepath.Join(t.TempDir(), "gpt2d.db")
	cmd := gpt2d(nil, "users", "create", "--data", data, "--username", "keeper")
	cmd.Stdin = strings.NewReader("keeper-password\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	dst := filepath.Join(t.TempDir(), "snap.db")
	if out, err := gpt2d(nil, "backup", "--data", data, dst).CombinedOutput(); err != nil {
		t.Fatalf("backup: %v %s", err, out)
	}
	db, err := store.Open(dst, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.UserByUsername("keeper"); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownCommandAndHelp(t *testing.T) {
	var out, errOut strings.Builder
	if err := run(context.Background(), []string{"frobnicate"}, nil, &out, &errOut); err == nil {
		t.Fatal("unknown command accepted")
	}
	if err := run(context.Background(), []string{"help"}, nil, &out, &errOut); err != nil || !strings.Contains(out.String(), "serve") {
		t.Fatalf("help: %v %q", err, out.String())
	}
}

func TestConfigFromFlagsAndEnv(t *testing.T) {
	env := map[string]string{
		"GPT2D_ADDR":             "127.0.0.1:9000",
		"GPT2D_TOKEN_TTL":        "10m",
		"GPT2D_REGISTRATION":     "closed",
		"GPT2D_JWT_SECRET":       strings.Repeat("s", 32),
		"GPT2D_TRUSTED_PROXIES":  "10.0.0.1, 10.0.0.2",
		"GPT2D_GENERATE_TIMEOUT": "45s",
	}
	parse := func(env map[string]string, args ...string) (Config, error) {
		var cfg Config
		b := newBinder("serve", func(k string) string { return env[k] }, io.Discard)
		cfg.bindStore(b)
		cfg.bindAuth(b)
		cfg.bindServe(b)
		if err := b.parse(args); err != nil {
			return cfg, err
		}
		return cfg, cfg.validate()
	}
	cfg, err := parse(env, "--addr", ":7000")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Addr: ":7000", TokenTTL: 10 * time.Minute, Registration: "closed", GenerateTimeout: 45 * time.Second,
		BcryptCost: 11, Data: "data/gpt2d.db", JWTSecret: strings.Repeat("s", 32)}
	if cfg.Addr != want.Addr || cfg.TokenTTL != want.TokenTTL || cfg.Registration != want.Registration ||
		cfg.GenerateTimeout != want.GenerateTimeout || cfg.BcryptCost != want.BcryptCost || cfg.Data != want.Data ||
		cfg.JWTSecret != want.JWTSecret || fmt.Sprint(cfg.TrustedProxies) != "[10.0.0.1 10.0.0.2]" {
		t.Fatalf("config = %+v", cfg)
	}
	if !cfg.PrefixCache || cfg.KVCacheMB != 0 || cfg.KVDType != "f32" || cfg.PrefixCacheScope != "user" {
		t.Errorf("KV defaults: prefix cache %v scoped %q, %d MiB, %s", cfg.PrefixCache, cfg.PrefixCacheScope, cfg.KVCacheMB, cfg.KVDType)
	}
	env["GPT2D_KV_CACHE_MB"], env["GPT2D_PREFIX_CACHE"] = "4096", "false"
	if cfg, err = parse(env, "--kv-cache-mb", "2048"); err != nil || cfg.PrefixCache || cfg.KVCacheMB != 2048 {
		t.Errorf("KV settings: %v, prefix cache %v, %d MiB (flag over env)", err, cfg.PrefixCache, cfg.KVCacheMB)
	}
	delete(env, "GPT2D_KV_CACHE_MB")
	delete(env, "GPT2D_PREFIX_CACHE")
	env["GPT2D_KV_DTYPE"] = "bf16"
	if cfg, err = parse(env); err != nil || cfg.KVDType != "bf16" {
		t.Errorf("KV dtype from the environment: %v, %q", err, cfg.KVDType)
	}
	delete(env, "GPT2D_KV_DTYPE")
	env["GPT2D_PREFIX_CACHE_SCOPE"] = "global"
	if cfg, err = parse(env); err != nil || cfg.PrefixCacheScope != "global" {
		t.Errorf("GPT2D_PREFIX_CACHE_SCOPE=global: %v, scope %q", err, cfg.PrefixCacheScope)
	}
	if cfg, err = parse(env, "--prefix-cache-scope", "user"); err != nil || cfg.PrefixCacheScope != "user" {
		t.Errorf("--prefix-cache-scope user over the env: %v, scope %q", err, cfg.PrefixCacheScope)
	}
	delete(env, "GPT2D_PREFIX_CACHE_SCOPE")

	bad := []struct {
		name string
		env  map[string]string
		args []string
	}{
		{"registration neither open nor closed", nil, []string{"--registration", "maybe"}},
		{"duration env not a duration", map[string]string{"GPT2D_TOKEN_TTL": "soon"}, nil},
		{"int env not an int", map[string]string{"GPT2D_SLOTS": "many"}, nil},
		{"proxy header without trusted proxies", nil, []string{"--proxy-header", "X-Forwarded-For"}},
		{"secret as a flag", nil, []string{"--jwt-secret", "abc"}},
		{"negative rate limit", nil, []string{"--user-requests-per-minute", "-1"}},
		{"negative token quota", map[string]string{"GPT2D_ADMIN_TOKENS_PER_DAY": "-5"}, nil},
		{"metrics token as a flag", nil, []string{"--metrics-token", "abc"}},
		{"bool env not a bool", map[string]string{"GPT2D_PREFIX_CACHE": "sometimes"}, nil},
		{"negative KV cache", nil, []string{"--kv-cache-mb", "-1"}},
		{"KV dtype not a float type", nil, []string{"--kv-dtype", "int8"}},
		{"prefix cache scope neither user nor global", nil, []string{"--prefix-cache-scope", "key"}},
		{"prefix cache scope env neither user nor global", map[string]string{"GPT2D_PREFIX_CACHE_SCOPE": "Global"}, nil},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := parse(tt.env, tt.args...); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}

func TestLimitsAndMetricsTokenConfig(t *testing.T) {
	var cfg Config
	env := map[string]string{"GPT2D_USER_TOKENS_PER_DAY": "5000", "GPT2D_METRICS_TOKEN": "env-token-0123456789"}
	b := newBinder("serve", func(k string) string { return env[k] }, io.Discard)
	cfg.bindServe(b)
	if err := b.parse([]string{"--admin-requests-per-minute", "600", "--max-new-tokens", "256"}); err != nil {
		t.Fatal(err)
	}
	if cfg.UserRPM != 60 || cfg.UserTokensPerDay != 5000 || cfg.AdminRPM != 600 || cfg.AdminTokensPerDay != 0 || cfg.MaxNewTokens != 256 || cfg.MaxChoices != 8 {
		t.Fatalf("limits %+v", cfg)
	}
	if tok, err := cfg.metricsToken(); err != nil || tok != "env-token-0123456789" {
		t.Fatalf("metrics token from env: %q %v", tok, err)
	}
	file := filepath.Join(t.TempDir(), "metrics-token")
	os.WriteFile(file, []byte("file-token-0123456789\n"), 0o600)
	cfg.MetricsTokenFile = file
	if tok, err := cfg.metricsToken(); err != nil || tok != "file-token-0123456789" {
		t.Fatalf("metrics token from file: %q %v", tok, err)
	}
	os.WriteFile(file, []byte("short"), 0o600)
	if _, err := cfg.metricsToken(); err == nil {
		t.Fatal("short metrics token accepted")
	}
}
