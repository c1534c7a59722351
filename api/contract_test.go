package api

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// The original service's four test scenarios, over real HTTP with the real
// engine.

func TestRegisterLoginGenerate(t *testing.T) {
	ts := start(t)
	u := ts.register("testuser", "testpassword", "", "")
	if u["username"] != "testuser" || u["role"] != "user" || u["id"] == nil {
		t.Fatalf("register body = %v", u)
	}
	if _, leaked := u["password"]; leaked {
		t.Fatal("register echoed the password")
	}
	r := ts.postForm("/token", url.Values{"username": {"testuser"}, "password": {"testpassword"}})
	wantStatus(t, r, 200)
	tok := r.json(t)
	if tok["token_type"] != "bearer" || tok["access_token"] == "" {
		t.Fatalf("token body = %v", tok)
	}
	r = ts.postJSON("/generate", tok["access_token"].(string), map[string]any{"prompt": "Once upon a time", "max_length": 20})
	wantStatus(t, r, 200)
	g := r.json(t)
	text, _ := g["generated_text"].(string)
	if !strings.HasPrefix(text, "Once upon a time") || len(text) <= len("Once upon a time") {
		t.Fatalf("generated_text %q does not continue the prompt", text)
	}
	if g["model"] != g["model_name"] || g["model"] == "" {
		t.Fatalf("model = %v, model_name = %v", g["model"], g["model_name"])
	}
}

func TestGenerateWithoutTokenIsNotAuthenticated(t *testing.T) {
	ts := start(t)
	r := ts.postJSON("/generate", "", map[string]any{"prompt": "hello"})
	wantDetail(t, r, 401, "Not authenticated")
	wantBearerChallenge(t, r)
}

func TestAdminListsUsers(t *testing.T) {
	ts := start(t)
	tok := ts.admin("admin")
	ts.register("alice", "alicepassword", "", "")
	r := ts.get("/admin/users", tok)
	wantStatus(t, r, 200)
	var users []map[string]any
	if err := json.Unmarshal(r.body, &users); err != nil {
		t.Fatal(err)
	}
	if len(users) != 2 || users[0]["username"] != "admin" || users[1]["username"] != "alice" || users[1]["role"] != "user" {
		t.Fatalf("users = %v", users)
	}
	if strings.Contains(string(r.body), "password") {
		t.Fatalf("user list mentions passwords: %s", r.body)
	}
}

func TestUserGetsAdminAccessRequired(t *testing.T) {
	ts := start(t)
	ts.register("bob", "bobpassword", "user", "")
	tok := ts.login("bob", "bobpassword")
	for _, path := range []string{"/admin/users", "/admin/audit", "/admin/backup"} {
		wantDetail(t, ts.get(path, tok), 403, "Admin access required")
	}
}

func TestAdminUsersPagination(t *testing.T) {
	ts := start(t)
	tok := ts.admin("admin")
	for _, n := range []string{"u1-user", "u2-user", "u3-user"} {
		ts.register(n, "sw0rdfish-41", "", "")
	}
	r := ts.get("/admin/users?skip=1&limit=2", tok)
	wantStatus(t, r, 200)
	var users []map[string]any
	json.Unmarshal(r.body, &users)
	if len(users) != 2 || users[0]["username"] != "u1-user" {
		t.Fatalf("page = %v", users)
	}
	wantStatus(t, ts.get("/admin/users?limit=0", tok), 422)
	wantStatus(t, ts.get("/admin/users?limit=abc", tok), 422)
}

func TestDuplicateUsernameIsRejected(t *testing.T) {
	ts := start(t)
	ts.register("carol", "carolpassword", "", "")
	for _, name := range []string{"carol", "CAROL"} {
		r := ts.postJSON("/users", "", map[string]any{"username": name, "password": "otherpassword"})
		wantDetail(t, r, 400, "Username already registered")
	}
}

func TestWrongCredentialsGiveTheSameAnswer(t *testing.T) {
	ts := start(t)
	ts.register("dave", "davepassword", "", "")
	for _, form := range []url.Values{
		{"username": {"dave"}, "password": {"wrongpassword"}},
		{"username": {"nobody"}, "password": {"davepassword"}},
	} {
		r := ts.postForm("/token", form)
		wantDetail(t, r, 401, "Incorrect username or password")
		wantBearerChallenge(t, r)
	}
}

// validationCase is a request expected to fail FastAPI-style with 422.
type validationCase struct {
	name        string
	path        string
	contentType string
	body        string
	loc         []any
	typ         string
}

func TestValidationErrorsLookLikeFastAPI(t *testing.T) {
	ts := start(t)
	tok := ts.admin("admin")
	long := strings.Repeat("a", 501)
	cases := []validationCase{
		{"prompt missing", "/generate", "application/json", `{}`, []any{"body", "prompt"}, "missing"},
		{"prompt empty", "/generate", "application/json", `{"prompt":""}`, []any{"body", "prompt"}, "string_too_short"},
		{"prompt over 500 characters", "/generate", "application/json", `{"prompt":"` + long + `"}`, []any{"body", "prompt"}, "string_too_long"},
		{"prompt not a string", "/generate", "application/json", `{"prompt":5}`, []any{"body", "prompt"}, "string_type"},
		{"max_length below 10", "/generate", "application/json", `{"prompt":"hi","max_length":9}`, []any{"body", "max_length"}, "greater_than_equal"},
		{"max_length above 200", "/generate", "application/json", `{"prompt":"hi","max_length":201}`, []any{"body", "max_length"}, "less_than_equal"},
		{"max_length fractional", "/generate", "application/json", `{"prompt":"hi","max_length":20.5}`, []any{"body", "max_length"}, "int_type"},
		{"malformed JSON", "/generate", "application/json", `{"prompt":`, []any{"body", 10.0}, "json_invalid"},
		{"JSON array", "/generate", "application/json", `["prompt"]`, []any{"body"}, "model_attributes_type"},
		{"empty body", "/generate", "application/json", ``, []any{"body"}, "missing"},
		{"wrong content type", "/generate", "text/plain", `{"prompt":"hi"}`, []any{"body"}, "model_attributes_type"},
		{"form instead of JSON", "/generate", "application/x-www-form-urlencoded", `prompt=hi`, []any{"body"}, "model_attributes_type"},
		{"username too short", "/users", "application/json", `{"username":"ab","password":"sw0rdfish-41"}`, []any{"body", "username"}, "string_too_short"},
		{"username too long", "/users", "application/json", `{"username":"` + strings.Repeat("u", 51) + `","password":"sw0rdfish-41"}`, []any{"body", "username"}, "string_too_long"},
		{"username with control character", "/users", "application/json", `{"username":"evil\nadmin","password":"sw0rdfish-41"}`, []any{"body", "username"}, "value_error"},
		{"password missing", "/users", "application/json", `{"username":"erin"}`, []any{"body", "password"}, "missing"},
		{"password of 7 characters", "/users", "application/json", `{"username":"erin","password":"1234567"}`, []any{"body", "password"}, "string_too_short"},
		{"password over 72 bytes", "/users", "application/json", `{"username":"erin","password":"` + strings.Repeat("é", 37) + `"}`, []any{"body", "password"}, "string_too_long"},
		{"password with NUL", "/users", "application/json", `{"username":"erin","password":"abcd\u0000efgh"}`, []any{"body", "password"}, "value_error"},
		{"unknown role", "/users", "application/json", `{"username":"erin","password":"sw0rdfish-41","role":"root"}`, []any{"body", "role"}, "enum"},
		{"token without password", "/token", "application/x-www-form-urlencoded", `username=erin`, []any{"body", "password"}, "missing"},
		{"token as JSON", "/token", "application/json", `{"username":"erin","password":"sw0rdfish-41"}`, []any{"body", "username"}, "missing"},
		{"token with other grant", "/token", "application/x-www-form-urlencoded", `username=erin&password=x&grant_type=client_credentials`, []any{"body", "grant_type"}, "string_pattern_mismatch"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.do("POST", tc.path, tok, tc.contentType, strings.NewReader(tc.body))
			wantStatus(t, r, 422)
			var body struct {
				Detail []struct {
					Loc  []any  `json:"loc"`
					Msg  string `json:"msg"`
					Type string `json:"type"`
				} `json:"detail"`
			}
			if err := json.Unmarshal(r.body, &body); err != nil || len(body.Detail) == 0 {
				t.Fatalf("422 body %s: %v", r.body, err)
			}
			d := body.Detail[0]
			if d.Type != tc.typ || d.Msg == "" || !equalLoc(d.Loc, tc.loc) {
				t.Fatalf("detail[0] = %+v, want loc %v type %s", d, tc.loc, tc.typ)
			}
		})
	}
	// Nothing was registered by the failed attempts.
	if n, _ := ts.db.CountUsers(); n != 1 {
		t.Fatalf("%d users after failed registrations", n)
	}
}

func equalLoc(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestValidationReportsEveryBadField(t *testing.T) {
	ts := start(t)
	r := ts.postJSON("/users", "", map[string]any{"username": "x", "password": "short"})
	wantStatus(t, r, 422)
	if d, _ := r.detail(t).([]any); len(d) != 2 {
		t.Fatalf("detail = %s, want two entries", r.body)
	}
}

func TestMaxLengthDefaultsAndAcceptsNumericString(t *testing.T) {
	ts := start(t)
	ts.register("frank", "frankpassword", "", "")
	tok := ts.login("frank", "frankpassword")
	for _, body := range []map[string]any{{"prompt": "Hello"}, {"prompt": "Hello", "max_length": "12"}} {
		wantStatus(t, ts.postJSON("/generate", tok, body), 200)
	}
}

func TestDocsAndOpenAPIArePublic(t *testing.T) {
	ts := start(t)
	r := ts.get("/docs", "")
	wantStatus(t, r, 200)
	if !strings.Contains(string(r.body), "/openapi.json") {
		t.Fatal("docs page does not load /openapi.json")
	}
	r = ts.get("/openapi.json", "")
	wantStatus(t, r, 200)
	var doc struct {
		OpenAPI    string                    `json:"openapi"`
		Paths      map[string]map[string]any `json:"paths"`
		Components struct {
			SecuritySchemes map[string]map[string]any `json:"securitySchemes"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi = %q", doc.OpenAPI)
	}
	if s := doc.Components.SecuritySchemes["bearerAuth"]; s["scheme"] != "bearer" {
		t.Fatalf("no bearer security scheme: %v", doc.Components.SecuritySchemes)
	}
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatal(err)
	}
	ts := start(t)
	param := regexp.MustCompile(`:(\w+)`)
	for _, r := range ts.srv.App().GetRoutes(true) {
		if r.Method == "HEAD" {
			continue
		}
		path := param.ReplaceAllString(r.Path, "{$1}")
		if _, ok := doc.Paths[path][strings.ToLower(r.Method)]; !ok {
			t.Errorf("%s %s is not in openapi.json", r.Method, path)
		}
	}
}

func TestHealth(t *testing.T) {
	ts := start(t)
	r := ts.get("/health", "")
	wantStatus(t, r, 200)
	if r.json(t)["status"] != "ok" {
		t.Fatalf("health = %s", r.body)
	}
}
