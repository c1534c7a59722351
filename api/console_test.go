package api

import (
	"net/http"
	"regexp"
	"strings"
	"testing"

	"gpt2d/auth"
	"gpt2d/console"
)

// TestConsoleIsServedWithAStrictPolicy checks the headers of every page
// and file of the console and docs: served without a token, framed by
// nobody, and under a Content-Security-Policy that allows no inline code
// and no other origin.
func TestConsoleIsServedWithAStrictPolicy(t *testing.T) {
	ts := start(t)
	for _, tt := range []struct {
		path, contentType string
	}{
		{"/", "text/html"},
		{"/ui/playground", "text/html"},
		{"/ui/account", "text/html"},
		{"/ui/admin", "text/html"},
		{"/ui/signin", "text/html"},
		{"/docs", "text/html"},
		{"/ui/app.js", "text/javascript"},
		{"/ui/docs.js", "text/javascript"},
		{"/ui/style.css", "text/css"},
		{"/ui/icon.svg", "image/svg+xml"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			r := ts.get(tt.path, "")
			wantStatus(t, r, 200)
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, tt.contentType) {
				t.Errorf("Content-Type %q, want %s", ct, tt.contentType)
			}
			csp := r.header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'",
				"frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'", "object-src 'none'", "require-trusted-types-for 'script'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			for _, banned := range []string{"unsafe-inline", "unsafe-eval", "http:", "https:", "*"} {
				if strings.Contains(csp, banned) {
					t.Errorf("CSP %q allows %q", csp, banned)
				}
			}
			if xfo := r.header.Get("X-Frame-Options"); xfo != "DENY" {
				t.Errorf("X-Frame-Options %q", xfo)
			}
			if nosniff := r.header.Get("X-Content-Type-Options"); nosniff != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", nosniff)
			}
			if r.header.Get("Set-Cookie") != "" || r.header.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("ambient credentials offered: %v", r.header)
			}
		})
	}
}

func TestConsoleServesNothingElse(t *testing.T) {
	ts := start(t)
	adminTok := ts.admin("root")
	for _, path := range []string{"/ui/nope.js", "/ui/", "/ui", "/ui/index.html", "/ui/docs.html", "/ui/..%2Fopenapi.json", "/ui/app.js/x", "/ui/ADMIN"} {
		// Not found, or (outside /ui/:name) not authenticated; never a file.
		if r := ts.get(path, ""); r.status != 404 && r.status != 401 {
			t.Errorf("GET %s: %d %s", path, r.status, r.body)
		}
	}
	// A token changes nothing: the console routes read no credential and
	// grant nothing (an admin's token gets the same bytes as no token).
	anon, withToken := ts.get("/ui/admin", ""), ts.get("/ui/admin", adminTok)
	if string(anon.body) != string(withToken.body) {
		t.Error("the console page depends on the caller's token")
	}
	if r := ts.get("/ui/admin.js", "Bearer "+auth.KeyPrefix+"forged"); r.status != 200 {
		t.Errorf("a forged credential on a static file: %d", r.status)
	}
}

func TestConsoleFilesAreRevalidated(t *testing.T) {
	ts := start(t)
	r := ts.get("/ui/app.js", "")
	etag := r.header.Get("ETag")
	if etag == "" || r.header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, r.header.Get("Cache-Control"))
	}
	req, _ := http.NewRequest("GET", ts.url+"/ui/app.js", nil)
	req.Header.Set("If-None-Match", etag)
	resp, err := ts.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 304 {
		t.Fatalf("revalidation: %d", resp.StatusCode)
	}
	if other := ts.get("/ui/api.js", "").header.Get("ETag"); other == etag {
		t.Fatal("two files share an ETag")
	}
}

func TestConsoleOffersRegistrationOnlyWhenOpen(t *testing.T) {
	open := start(t)
	if r := open.get("/", ""); !strings.Contains(string(r.body), `data-registration="open"`) {
		t.Error("open registration not announced")
	}
	closed := start(t, func(c *Config, _ *auth.Config) { c.RegistrationClosed = true })
	if r := closed.get("/ui/signin", ""); !strings.Contains(string(r.body), `data-registration="closed"`) {
		t.Error("closed registration not announced")
	}
}

// TestConsoleFilesAreSelfContained reads every embedded file: no inline
// script or style, no event-handler attribute, no string assigned as HTML,
// and every reference to a script, style sheet or image points at this
// server, so the pages work offline and within their policy.
func TestConsoleFilesAreSelfContained(t *testing.T) {
	site, err := console.New(console.Options{RegistrationOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"index.html": string(site.Index()), "docs.html": string(site.Docs())}
	for _, name := range site.AssetNames() {
		a, _ := site.Asset(name)
		files[name] = string(a.Body)
	}
	ref := regexp.MustCompile(`(?i)(?:src|href)\s*=\s*"([^"]*)"|\bfrom\s+'([^']*)'|import\(\s*'([^']*)'`)
	cssURL := regexp.MustCompile(`url\(\s*['"]?([^'")]*)`)
	for name, body := range files {
		if strings.HasSuffix(name, ".html") {
			if regexp.MustCompile(`(?i)<script(?:\s[^>]*)?>\s*[^<\s]`).MatchString(body) || !strings.Contains(body, `<script type="module" src="/ui/`) {
				t.Errorf("%s: inline script, or no module script from /ui/", name)
			}
			if regexp.MustCompile(`(?i)<style|\sstyle\s*=|\son[a-z]+\s*=`).MatchString(body) {
				t.Errorf("%s: inline style or event-handler attribute", name)
			}
		}
		if strings.HasSuffix(name, ".js") {
			if regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|\.style\.`).MatchString(body) {
				t.Errorf("%s: builds HTML from strings, evaluates code or sets inline styles", name)
			}
		}
		refs := ref.FindAllStringSubmatch(body, -1)
		if strings.HasSuffix(name, ".css") {
			refs = append(refs, cssURL.FindAllStringSubmatch(body, -1)...)
		}
		for _, m := range refs {
			target := strings.Join(m[1:], "")
			local := strings.HasPrefix(target, "/") && !strings.HasPrefix(target, "//") || strings.HasPrefix(target, "./") ||
				strings.HasPrefix(target, "#") || strings.HasPrefix(target, "data:")
			if !local {
				t.Errorf("%s: reference to %q", name, target)
			}
			if t := strings.TrimPrefix(target, "./"); strings.HasSuffix(t, ".js") || strings.HasSuffix(t, ".css") || strings.HasSuffix(t, ".svg") {
				if _, err := site.Asset(strings.TrimPrefix(t, "/ui/")); err != nil {
					files["missing"] += target + " "
				}
			}
		}
	}
	if files["missing"] != "" {
		t.Errorf("references to files that are not embedded: %s", files["missing"])
	}
}
