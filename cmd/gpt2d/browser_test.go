package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// browserWait bounds one browser step: waiting for a condition, a click,
// a navigation. It is generous because CI shares two cores between the
// server, Chromium and the race detector; conditions are polled, so a fast
// machine does not wait for it.
const browserWait = 2 * time.Minute

// browser is a headless Debian Chromium driven over the DevTools protocol,
// with one tab per signed-in person. Each tab records what the page must
// never do: open a dialog (an injected alert), load anything from another
// origin, throw, or violate its Content-Security-Policy.
type browser struct {
	t      *testing.T
	origin string
	ctx    context.Context // the first tab, parent of the others
	tabs   []*tab
	output *syncBuffer // Chromium's own stderr, for start-up failures
	shots  string      // where screenshots go, made at the first failure
}

// tab is one browser tab (its own sessionStorage, so its own session).
type tab struct {
	b    *browser
	name string
	ctx  context.Context

	mu       sync.Mutex
	dialogs  []string
	foreign  []string
	problems []string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// browserUnavailable ends a test that cannot start Chromium: a failure in
// CI (CI=true), where .ci/run installs it, and a visible skip elsewhere.
func browserUnavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("browser test cannot run: %s", reason)
	}
	t.Skipf("SKIP browser test: %s (apt-get install chromium)", reason)
}

// startBrowser starts Chromium for pages of origin. As root it needs
// --no-sandbox; the other flags keep it from reaching any network and from
// background work that competes for the CPU.
func startBrowser(t *testing.T, origin string) *browser {
	t.Helper()
	exe := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			exe = p
			break
		}
	}
	if exe == "" {
		browserUnavailable(t, "no chromium on PATH")
	}
	profile, err := os.MkdirTemp("", "gpt2d-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, origin: origin, output: &syncBuffer{}}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 1000),
		chromedp.CombinedOutput(b.output),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	b.ctx = ctx
	t.Cleanup(func() {
		if t.Failed() {
			b.screenshots()
		}
		cancel()
		cancelAlloc() // waits for Chromium to exit
		os.RemoveAll(profile)
	})
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			browserUnavailable(t, "%s did not start: %v\n%s", exe, err, b.output)
		}
	case <-time.After(browserWait):
		browserUnavailable(t, "%s did not start within %s\n%s", exe, browserWait, b.output)
	}
	b.tabs = append(b.tabs, b.watch("first", ctx))
	return b
}

// bind makes the browser's helpers report to t (a subtest) until the
// returned function restores the previous test.
func (b *browser) bind(t *testing.T) func() {
	prev := b.t
	b.t = t
	return func() { b.t = prev }
}

// newTab opens another tab.
func (b *browser) newTab(name string) *tab {
	b.t.Helper()
	ctx, _ := chromedp.NewContext(b.ctx)     // ends with the browser
	if err := chromedp.Do(ctx); err != nil { // creates the tab; binds it to ctx, which has no deadline
		b.t.Fatalf("open tab %s: %v", name, err)
	}
	tb := b.watch(name, ctx)
	b.tabs = append(b.tabs, tb)
	return tb
}

// watch records tb's dialogs (dismissing them), requests to other
// origins, uncaught exceptions and console errors other than the
// browser's note of a 4xx answer, which the console provokes on purpose.
func (b *browser) watch(name string, ctx context.Context) *tab {
	tb := &tab{b: b, name: name, ctx: ctx}
	dialogs := make(chan struct{}, 16)
	chromedp.Listen(ctx, func(ev any) {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		switch ev := ev.(type) {
		case *page.EventJavascriptDialogOpening:
			tb.dialogs = append(tb.dialogs, string(ev.Type)+": "+ev.Message)
			select {
			case dialogs <- struct{}{}:
			default:
			}
		case *network.EventRequestWillBeSent:
			u := ev.Request.URL
			if !strings.HasPrefix(u, b.origin+"/") && u != b.origin && !strings.HasPrefix(u, "blob:"+b.origin+"/") &&
				!strings.HasPrefix(u, "data:") && u != "about:blank" {
				tb.foreign = append(tb.foreign, u)
			}
		}
	})
	go func() { // a dialog blocks the page until answered
		for range dialogs {
			chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if m.IsException() || (m.Type == chromedp.ConsoleError && m.Source != "network") {
				tb.mu.Lock()
				tb.problems = append(tb.problems, m.String())
				tb.mu.Unlock()
			}
		}
	}()
	return tb
}

// screenshotDir is where screenshots of a failed test go: $GPT2D_SCREENSHOTS
// or a new directory under the system's temporary directory, kept after
// the test (t.TempDir would delete them with it).
func (b *browser) screenshotDir() string {
	if b.shots != "" {
		return b.shots
	}
	b.shots = os.TempDir()
	if d := os.Getenv("GPT2D_SCREENSHOTS"); d != "" {
		if os.MkdirAll(d, 0o755) == nil {
			b.shots = d
		}
	} else {
		name := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(b.t.Name(), "-")
		if d, err := os.MkdirTemp("", "gpt2d-console-"+name+"-"); err == nil {
			b.shots = d
		}
	}
	return b.shots
}

// fail takes a screenshot of the tab as the failing step left it, then
// fails the test.
func (tb *tab) fail(format string, args ...any) {
	tb.b.t.Helper()
	name := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(tb.b.t.Name(), "-")
	tb.screenshot(tb.b.screenshotDir(), "failed-"+name)
	tb.b.t.Fatalf(format, args...)
}

// screenshots saves, for each tab, the screen as the failure left it and
// then each view of the console and the docs page.
func (b *browser) screenshots() {
	dir := b.screenshotDir()
	for _, tb := range b.tabs {
		tb.screenshot(dir, "at-failure")
		for _, view := range []string{"signin", "playground", "account", "admin"} {
			ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
			chromedp.Do(ctx, chromedp.Navigate(b.origin+"/ui/"+view), chromedp.Poll[chromedp.Void](`document.body.dataset.view !== undefined`, chromedp.WithPollingTimeout(10*time.Second)))
			cancel()
			tb.screenshot(dir, view)
		}
		ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
		chromedp.Do(ctx, chromedp.Navigate(b.origin+"/docs"))
		cancel()
		tb.screenshot(dir, "docs")
	}
	b.t.Logf("screenshots of each view: %s", dir)
}

func (tb *tab) screenshot(dir, what string) {
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.b.t.Logf("screenshot %s/%s: %v", tb.name, what, err)
		return
	}
	os.WriteFile(filepath.Join(dir, tb.name+"-"+what+".png"), png, 0o644)
}

// do runs actions in the tab, failing the test with what step it was.
func (tb *tab) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.fail("%s: %s: %v", tb.name, step, err)
	}
}

// eval evaluates a JavaScript expression (awaiting a promise) in the tab.
func eval[T any](tb *tab, js string) T {
	tb.b.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, browserWait)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.fail("%s: evaluate %s: %v", tb.name, js, err)
	}
	return v
}

// until polls a JavaScript condition until it holds. describe is a JS
// expression shown when it never does.
func (tb *tab) until(what, cond string) {
	tb.b.t.Helper()
	deadline := time.Now().Add(browserWait)
	for {
		ok, err := chromedp.Run(tb.ctx, chromedp.Evaluate[bool](`!!(`+cond+`)`))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			state, _ := chromedp.Run(tb.ctx, chromedp.Evaluate[string](
				`'view=' + document.body.dataset.view + ' notice=' + document.getElementById('notice')?.textContent + ' errors=' + [...document.querySelectorAll('.error')].map(e => e.textContent).filter(Boolean).join(' | ')`))
			tb.fail("%s: %s: never happened (%s); err=%v; page: %s", tb.name, what, cond, err, state)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// text returns the text content of the element matching the CSS selector.
func (tb *tab) text(sel string) string {
	tb.b.t.Helper()
	q, _ := json.Marshal(sel)
	return eval[string](tb, `document.querySelector(`+string(q)+`)?.textContent ?? ''`)
}

// set types value into a form field (replacing what it held) as a
// person would.
func (tb *tab) set(sel, value string) {
	tb.b.t.Helper()
	tb.do("fill "+sel, chromedp.WaitVisible(chromedp.CSS(sel)))
	if value == "" { // SetValue refuses the empty string
		q, _ := json.Marshal(sel)
		eval[bool](tb, `(document.querySelector(`+string(q)+`).value = '') === ''`)
		return
	}
	tb.do("fill "+sel, chromedp.SetValue(chromedp.CSS(sel), value))
}

// click clicks the element once it is visible.
func (tb *tab) click(sel string) {
	tb.b.t.Helper()
	tb.do("click "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// clean fails the test if the tab opened a dialog, reached another
// origin, threw, or logged an error.
func (tb *tab) clean() {
	tb.b.t.Helper()
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if len(tb.dialogs) > 0 {
		tb.b.t.Errorf("%s: dialogs opened: %q", tb.name, tb.dialogs)
	}
	if len(tb.foreign) > 0 {
		tb.b.t.Errorf("%s: requests to other origins: %q", tb.name, tb.foreign)
	}
	if len(tb.problems) > 0 {
		tb.b.t.Errorf("%s: console errors or exceptions: %q", tb.name, tb.problems)
	}
}
