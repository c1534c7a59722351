package api

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"gpt2d/auth"
	"gpt2d/store"
)

func TestTokenRejected(t *testing.T) {
	key := []byte(strings.Repeat("t", 32)) // the test server's key
	claims := func(ts *testServer) jwt.MapClaims {
		now := ts.clock.Now()
		return jwt.MapClaims{"sub": "1", "iss": "gpt2d", "aud": "gpt2d", "jti": "x",
			"iat": float64(now.UnixMilli()) / 1000, "exp": now.Add(time.Minute).Unix()}
	}
	sign := func(t *testing.T, m jwt.SigningMethod, k any, c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(m, c).SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	tests := []struct {
		name  string
		token func(t *testing.T, ts *testServer, valid string) string
	}{
		{"alg none", func(t *testing.T, ts *testServer, _ string) string {
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(ts))
		}},
		{"alg none written by hand", func(t *testing.T, ts *testServer, valid string) string {
			parts := strings.Split(valid, ".")
			return base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
		}},
		{"HS384", func(t *testing.T, ts *testServer, _ string) string {
			return sign(t, jwt.SigningMethodHS384, key, claims(ts))
		}},
		{"wrong key", func(t *testing.T, ts *testServer, _ string) string {
			return sign(t, jwt.SigningMethodHS256, []byte(strings.Repeat("w", 32)), claims(ts))
		}},
		{"edited payload", func(t *testing.T, ts *testServer, valid string) string {
			parts := strings.Split(valid, ".")
			p, _ := base64.RawURLEncoding.DecodeString(parts[1])
			p = []byte(strings.Replace(string(p), `"sub":"2"`, `"sub":"1"`, 1)) // become the admin
			parts[1] = base64.RawURLEncoding.EncodeToString(p)
			return strings.Join(parts, ".")
		}},
		{"no exp", func(t *testing.T, ts *testServer, _ string) string {
			c := claims(ts)
			delete(c, "exp")
			return sign(t, jwt.SigningMethodHS256, key, c)
		}},
		{"expired", func(t *testing.T, ts *testServer, valid string) string {
			ts.clock.Advance(31 * time.Minute)
			return valid
		}},
		{"wrong audience", func(t *testing.T, ts *testServer, _ string) string {
			c := claims(ts)
			c["aud"] = "other-service"
			return sign(t, jwt.SigningMethodHS256, key, c)
		}},
		{"deleted user", func(t *testing.T, ts *testServer, valid string) string {
			admin := ts.login("root", "admin-password")
			wantStatus(t, ts.do("DELETE", "/admin/users/2", admin, "", nil), 200)
			return valid
		}},
		{"disabled user", func(t *testing.T, ts *testServer, valid string) string {
			admin := ts.login("root", "admin-password")
			wantStatus(t, ts.do("PATCH", "/admin/users/2", admin, "application/json", strings.NewReader(`{"disabled":true}`)), 200)
			return valid
		}},
		{"after password change", func(t *testing.T, ts *testServer, valid string) string {
			r := ts.postJSON("/users/me/password", valid, map[string]any{"current_password": "userpassword", "new_password": "newuserpassword"})
			wantStatus(t, r, 200)
			return valid
		}},
		{"after logout", func(t *testing.T, ts *testServer, valid string) string {
			wantStatus(t, ts.postJSON("/logout", valid, nil), 200)
			return valid
		}},
		{"after role change", func(t *testing.T, ts *testServer, valid string) string {
			admin := ts.login("root", "admin-password")
			wantStatus(t, ts.do("PATCH", "/admin/users/2", admin, "application/json", strings.NewReader(`{"role":"admin"}`)), 200)
			return valid
		}},
		{"garbage", func(t *testing.T, ts *testServer, _ string) string { return "not.a.jwt" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := start(t)
			ts.admin("root") // id 1
			ts.register("user", "userpassword", "", "")
			valid := ts.login("user", "userpassword") // sub 2
			wantStatus(t, ts.get("/users/me", valid), 200)

			tok := tt.token(t, ts, valid)
			for _, path := range []string{"/users/me", "/admin/users"} {
				r := ts.get(path, tok)
				wantDetail(t, r, 401, "Could not validate credentials")
				if tt.name == "expired" {
					// RFC 6750: the client should refresh, not sign in.
					if got := r.header.Get("WWW-Authenticate"); got != `Bearer error="invalid_token", error_description="token expired"` {
						t.Fatalf("WWW-Authenticate = %q", got)
					}
					continue
				}
				wantBearerChallenge(t, r)
			}
		})
	}
}

func TestMissingOrNonBearerAuthorizationIsNotAuthenticated(t *testing.T) {
	ts := start(t)
	for _, h := range []string{"", "Basic dXNlcjpwYXNz", "Bearer", "Bearer "} {
		req, _ := http.NewRequest("GET", ts.url+"/users/me", nil)
		if h != "" {
			req.Header.Set("Authorization", h)
		}
		resp, err := ts.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		r := response{status: resp.StatusCode, header: resp.Header, body: b}
		wantDetail(t, r, 401, "Not authenticated")
		wantBearerChallenge(t, r)
	}
}

func TestEveryNonPublicRouteDeniesAnonymousCallers(t *testing.T) {
	ts := start(t)
	for _, rt := range ts.srv.App().GetRoutes(true) {
		key := rt.Method + " " + rt.Path
		if publicRoutes[key] || optionalAuthRoutes[key] || isConsoleRoute(rt.Path) {
			continue
		}
		path := strings.ReplaceAll(rt.Path, ":user_id", "1")
		r := ts.do(rt.Method, path, "", "application/json", strings.NewReader("{}"))
		if r.status != 401 {
			t.Errorf("%s without a token: %d %s", key, r.status, r.body)
		}
	}
	// Unknown paths and variants of public paths are not public.
	for _, path := range []string{"/nope", "/admin", "/HEALTH", "/health/", "/token/../admin/users", "/docs/../admin/users"} {
		if r := ts.get(path, ""); r.status != 401 {
			t.Errorf("GET %s without a token: %d %s", path, r.status, r.body)
		}
	}
}

func TestNoPrivilegeEscalation(t *testing.T) {
	ts := start(t)
	adminTok := ts.admin("root")
	ts.register("user", "userpassword", "", "")
	userTok := ts.login("user", "userpassword")

	anon := ts.postJSON("/users", "", map[string]any{"username": "mallory", "password": "sw0rdfish-41", "role": "admin"})
	wantDetail(t, anon, 403, "Admin access required")
	asUser := ts.postJSON("/users", userTok, map[string]any{"username": "mallory", "password": "sw0rdfish-41", "role": "admin"})
	wantDetail(t, asUser, 403, "Admin access required")
	if _, err := ts.db.UserByUsername("mallory"); err == nil {
		t.Fatal("mallory was created")
	}
	// A user cannot change roles through the admin API either.
	r := ts.do("PATCH", "/admin/users/2", userTok, "application/json", strings.NewReader(`{"role":"admin"}`))
	wantDetail(t, r, 403, "Admin access required")

	created := ts.register("second-admin", "sw0rdfish-41", "admin", adminTok)
	if created["role"] != "admin" {
		t.Fatalf("admin-created admin = %v", created)
	}
}

func TestClosedRegistrationIsAdminOnly(t *testing.T) {
	ts := start(t, func(c *Config, _ *auth.Config) { c.RegistrationClosed = true })
	adminTok := ts.admin("root")
	r := ts.postJSON("/users", "", map[string]any{"username": "walkin", "password": "sw0rdfish-41"})
	wantDetail(t, r, 403, "Registration is closed")
	ts.register("invited", "sw0rdfish-41", "", adminTok)
}

func TestConcurrentRegistrationsOfOneNameSucceedOnce(t *testing.T) {
	ts := start(t)
	const n = 20
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = ts.postJSON("/users", "", map[string]any{"username": "racer", "password": fmt.Sprintf("password-%d", i)}).status
		}()
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[200] != 1 || count[400] != n-1 {
		t.Fatalf("statuses = %v, want one 200 and %d 400", count, n-1)
	}
}

func TestHugeBodyIsRejectedAndServerKeepsServing(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")

	// Raw TCP: send the headers of a 10 MB body and only part of it; the
	// server must answer 413 from Content-Length without reading it all.
	conn, err := net.Dial("tcp", strings.TrimPrefix(ts.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /generate HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", tok, 10<<20)
	conn.Write([]byte(`{"prompt":"` + strings.Repeat("a", 64<<10)))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("10 MB body: status %d, want 413", resp.StatusCode)
	}

	// Through net/http as well, the whole 10 MB.
	r, err := http.NewRequest("POST", ts.url+"/generate", strings.NewReader(strings.Repeat("x", 10<<20)))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	if resp, err := ts.http.Do(r); err == nil {
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("net/http 10 MB body: status %d", resp.StatusCode)
		}
	} // a reset while still sending is also a refusal

	wantStatus(t, ts.postJSON("/generate", tok, map[string]any{"prompt": "still here", "max_length": 12}), 200)
}

func TestOversizedHeadersAreRejected(t *testing.T) {
	ts := start(t)
	// The server may answer and close before the client has written the
	// whole request; the client then sees a reset instead of the status.
	// Either way the request is refused and the server keeps serving.
	for _, tt := range []struct {
		name, path string
		header     string
		want       []int
	}{
		{"16 KiB header", "/health", strings.Repeat("h", 16<<10), []int{431}},
		{"16 KiB URL", "/health?" + strings.Repeat("q", 16<<10), "", []int{431, 414}},
	} {
		req, _ := http.NewRequest("GET", ts.url+tt.path, nil)
		if tt.header != "" {
			req.Header.Set("X-Big", tt.header)
		}
		resp, err := ts.http.Do(req)
		if err != nil {
			continue
		}
		resp.Body.Close()
		if !slices.Contains(tt.want, resp.StatusCode) {
			t.Errorf("%s: status %d, want one of %v", tt.name, resp.StatusCode, tt.want)
		}
	}
	wantStatus(t, ts.get("/health", ""), 200)
}

func TestLoginThrottledWithRetryAfter(t *testing.T) {
	ts := start(t, func(_ *Config, a *auth.Config) {
		a.Throttle = auth.LoginThrottleConfig{Pair: auth.ThrottleConfig{FreeFailures: 5}}
	})
	ts.register("victim", "victimpassword", "", "")
	bad := url.Values{"username": {"victim"}, "password": {"guess"}}
	for range 6 {
		wantStatus(t, ts.postForm("/token", bad), 401)
	}
	r := ts.postForm("/token", url.Values{"username": {"victim"}, "password": {"victimpassword"}})
	wantStatus(t, r, 429)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	ts.clock.Advance(2 * time.Second)
	wantStatus(t, ts.postForm("/token", url.Values{"username": {"victim"}, "password": {"victimpassword"}}), 200)
}

func TestRegistrationThrottledPerIP(t *testing.T) {
	ts := start(t, func(c *Config, _ *auth.Config) { c.RegisterThrottle = auth.ThrottleConfig{FreeFailures: 5} })
	ts.register("taken", "sw0rdfish-41", "", "")
	for range 6 {
		wantStatus(t, ts.postJSON("/users", "", map[string]any{"username": "taken", "password": "sw0rdfish-41"}), 400)
	}
	r := ts.postJSON("/users", "", map[string]any{"username": "fresh-name", "password": "sw0rdfish-41"})
	wantStatus(t, r, 429)
	if r.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
}

func TestRefreshTokenRotationOverHTTP(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	_, r1 := ts.loginPair("user", "userpassword")

	r := ts.postForm("/token/refresh", url.Values{"refresh_token": {r1}})
	wantStatus(t, r, 200)
	m := r.json(t)
	access, r2 := m["access_token"].(string), m["refresh_token"].(string)
	wantStatus(t, ts.get("/users/me", access), 200)

	// Replaying r1 revokes the family: r2 dies with it.
	wantDetail(t, ts.postForm("/token/refresh", url.Values{"refresh_token": {r1}}), 401, "Could not validate credentials")
	wantStatus(t, ts.postJSON("/token/refresh", "", map[string]any{"refresh_token": r2}), 401)

	// Logout revokes refresh tokens too.
	access, r3 := ts.loginPair("user", "userpassword")
	wantStatus(t, ts.postJSON("/logout", access, nil), 200)
	wantStatus(t, ts.postForm("/token/refresh", url.Values{"refresh_token": {r3}}), 401)
}

func TestPasswordChange(t *testing.T) {
	ts := start(t)
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	wantDetail(t, ts.postJSON("/users/me/password", tok, map[string]any{"current_password": "wrong", "new_password": "newpassword1"}), 400, "Incorrect password")
	wantStatus(t, ts.postJSON("/users/me/password", tok, map[string]any{"current_password": "userpassword", "new_password": "short"}), 422)
	wantStatus(t, ts.postJSON("/users/me/password", tok, map[string]any{"current_password": "userpassword", "new_password": "newpassword1"}), 200)
	wantStatus(t, ts.postForm("/token", url.Values{"username": {"user"}, "password": {"userpassword"}}), 401)
	tok = ts.login("user", "newpassword1")
	r := ts.get("/users/me", tok)
	wantStatus(t, r, 200)
	if m := r.json(t); m["username"] != "user" || m["role"] != "user" {
		t.Fatalf("/users/me = %v", m)
	}
}

func TestPasswordsNeverInResponsesOrLogs(t *testing.T) {
	ts := start(t, func(_ *Config, a *auth.Config) {
		a.Throttle = auth.LoginThrottleConfig{Pair: auth.ThrottleConfig{FreeFailures: 2}}
	})
	secrets := []string{"Secret-Pass-One", "Secret-Pass-Two", "Wrong-Guess-Xyz", "tooshrt", "Admin-Pass-Word"}
	adminTok := ts.admin("root")
	ts.register("alice", secrets[0], "", "")
	ts.postJSON("/users", "", map[string]any{"username": "alice", "password": secrets[0]})          // duplicate
	ts.postJSON("/users", "", map[string]any{"username": "bob", "password": secrets[3]})            // policy
	ts.postJSON("/users", "", map[string]any{"username": "eve", "password": secrets[0], "role": 1}) // 422
	ts.postJSON("/users", "", map[string]any{"username": "eve", "password": secrets[4], "role": "admin"})
	for range 4 {
		ts.postForm("/token", url.Values{"username": {"alice"}, "password": {secrets[2]}})
	}
	ts.clock.Advance(time.Hour)
	tok := ts.login("alice", secrets[0])
	ts.postJSON("/users/me/password", tok, map[string]any{"current_password": secrets[2], "new_password": secrets[1]})
	ts.postJSON("/users/me/password", tok, map[string]any{"current_password": secrets[0], "new_password": secrets[1]})
	ts.get("/admin/users", adminTok)
	ts.get("/admin/audit", adminTok)
	ts.do("POST", "/users", "", "application/json", strings.NewReader(`{"username":"x","password":"`+secrets[2]))

	logs := ts.logs.String()
	if !strings.Contains(logs, `"login.failure"`) {
		t.Fatalf("expected audit lines in the log, got:\n%s", logs)
	}
	ts.mu.Lock()
	bodies := strings.Join(ts.bodies, "\n")
	ts.mu.Unlock()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("password %q appears in the log", s)
		}
		if strings.Contains(bodies, s) {
			t.Errorf("password %q appears in a response body", s)
		}
	}
	if strings.Contains(bodies, "$2a$") || strings.Contains(logs, "$2a$") {
		t.Error("a bcrypt hash leaked")
	}
}

func TestAdminManagesUsers(t *testing.T) {
	ts := start(t)
	adminTok := ts.admin("root")
	ts.register("user", "userpassword", "", "")
	patch := func(id, body string) response {
		return ts.do("PATCH", "/admin/users/"+id, adminTok, "application/json", strings.NewReader(body))
	}
	// The last admin cannot demote, disable or delete itself.
	wantDetail(t, patch("1", `{"role":"user"}`), 409, "Cannot remove the last admin")
	wantDetail(t, patch("1", `{"disabled":true}`), 409, "Cannot remove the last admin")
	wantDetail(t, ts.do("DELETE", "/admin/users/1", adminTok, "", nil), 409, "Cannot remove the last admin")
	wantDetail(t, patch("99", `{"role":"user"}`), 404, "User not found")
	wantStatus(t, patch("abc", `{"role":"user"}`), 422)
	wantStatus(t, patch("2", `{"role":"superuser"}`), 422)

	// Promote user, after which root may step down.
	r := patch("2", `{"role":"admin"}`)
	wantStatus(t, r, 200)
	if r.json(t)["role"] != "admin" {
		t.Fatalf("patch = %s", r.body)
	}
	wantStatus(t, patch("1", `{"role":"user"}`), 200)
	// root's token predates its demotion.
	wantStatus(t, ts.get("/admin/users", adminTok), 401)

	// The new admin disables and deletes root.
	newAdmin := ts.login("user", "userpassword")
	wantStatus(t, ts.do("PATCH", "/admin/users/1", newAdmin, "application/json", strings.NewReader(`{"disabled":true}`)), 200)
	wantDetail(t, ts.postForm("/token", url.Values{"username": {"root"}, "password": {"admin-password"}}), 401, "Incorrect username or password")
	wantStatus(t, ts.do("DELETE", "/admin/users/1", newAdmin, "", nil), 200)
	wantStatus(t, ts.do("DELETE", "/admin/users/1", newAdmin, "", nil), 404)

	// Every step is in the audit trail, newest first.
	r = ts.get("/admin/audit?limit=50", newAdmin)
	wantStatus(t, r, 200)
	for _, action := range []string{"user.register", "login.success", "login.failure", "user.role_change", "user.update", "user.delete"} {
		if !strings.Contains(string(r.body), `"action":"`+action+`"`) {
			t.Errorf("audit lacks %s: %s", action, r.body)
		}
	}
}

func TestAdminBackupIsAnOpenableStore(t *testing.T) {
	boltOnly(t)
	ts := start(t)
	adminTok := ts.admin("root")
	ts.register("user", "userpassword", "", "")
	r := ts.get("/admin/backup", adminTok)
	wantStatus(t, r, 200)
	path := t.TempDir() + "/backup.db"
	if err := writeFile(path, r.body); err != nil {
		t.Fatal(err)
	}
	snap, err := store.Open(path, store.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("backup does not open: %v", err)
	}
	defer snap.Close()
	if _, err := snap.UserByUsername("user"); err != nil {
		t.Fatalf("user missing from backup: %v", err)
	}
}
