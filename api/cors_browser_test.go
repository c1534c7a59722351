package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"gpt2d/auth"
)

// crossOriginFetch is run by a page of one origin against the API at
// another: a streamed chat completion with the headers the OpenAI client
// library sends, as a browser client would. It resolves to "STATUS BODY"
// or to the error a blocked request raises.
const crossOriginFetch = `(async (api, key) => {
  try {
    const r = await fetch(api + "/v1/chat/completions", {
      method: "POST",
      headers: {"Authorization": "Bearer " + key, "Content-Type": "application/json", "X-Stainless-Lang": "js"},
      body: JSON.stringify({model: "gpt2-tiny", messages: [{role: "user", content: "Hi"}], max_tokens: 3, stream: true}),
    });
    return r.status + " " + r.headers.get("X-Request-ID") + " " + (await r.text());
  } catch (e) {
    return "blocked: " + e;
  }
})`

// TestCORSInARealBrowser drives Chromium: a page served from an allowed
// origin streams a chat completion from the API (preflight, credentials in
// Authorization, X-Request-ID readable); a page from any other origin is
// refused by the browser.
func TestCORSInARealBrowser(t *testing.T) {
	exe, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed: the browser CORS test cannot run (.ci/run installs it)")
		}
		t.Skip("SKIP: chromium is not installed (apt-get install chromium): the browser CORS test cannot run")
	}
	// Two pages, on two origins (ports) of their own.
	page := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprint(w, "<!doctype html><title>client</title>")
		})}
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		return "http://" + ln.Addr().String()
	}
	allowed, other := page(), page()
	ts := start(t, func(c *Config, _ *auth.Config) { c.AllowedOrigins = []string{allowed} })
	ts.register("user", "userpassword", "", "")
	key := ts.login("user", "userpassword")

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	// Generous: it bounds a failure on a loaded machine, never a success.
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelTimeout()
	if err := chromedp.Do(ctx); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("chromium did not start: %v", err)
		}
		t.Skipf("SKIP: chromium did not start: %v", err)
	}
	fetchFrom := func(origin string) string {
		if err := chromedp.Do(ctx, chromedp.Navigate(origin+"/")); err != nil {
			t.Fatalf("open %s: %v", origin, err)
		}
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf("%s(%q, %q)", crossOriginFetch, ts.url, key), chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("fetch from %s: %v", origin, err)
		}
		return got
	}
	got := fetchFrom(allowed)
	status, rest, _ := strings.Cut(got, " ")
	id, body, _ := strings.Cut(rest, " ")
	if status != "200" || len(id) != 32 || !strings.Contains(body, "chat.completion.chunk") || !strings.HasSuffix(strings.TrimSpace(body), "data: [DONE]") {
		t.Fatalf("from the allowed origin: %.400s", got)
	}
	if got := fetchFrom(other); !strings.HasPrefix(got, "blocked: TypeError") {
		t.Fatalf("from another origin: %.400s", got)
	}
}
