package api

import (
	"bytes"
	"math"
	"net/http"
	"runtime"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"gpt2d/auth"
	"gpt2d/gpt2"
)

// exposition is a parsed /metrics answer.
type exposition map[string]*dto.MetricFamily

// scrape reads /metrics with token and parses it with Prometheus's own
// text-format parser.
func scrape(t *testing.T, ts *testServer, token string) exposition {
	t.Helper()
	r := ts.get("/metrics", token)
	wantStatus(t, r, 200)
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Fatalf("Content-Type %q", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		t.Fatalf("exposition does not parse: %v\n%s", err, r.body)
	}
	return fams
}

// matching returns the samples of family name whose labels include the
// given name/value pairs.
func (e exposition) matching(t *testing.T, name string, labels ...string) []*dto.Metric {
	t.Helper()
	f, ok := e[name]
	if !ok {
		t.Fatalf("metric %s missing", name)
	}
	var out []*dto.Metric
next:
	for _, m := range f.Metric {
		for i := 0; i < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		out = append(out, m)
	}
	return out
}

// counter sums the counters of name matching labels (0 if none yet).
func (e exposition) counter(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	var v float64
	for _, m := range e.matching(t, name, labels...) {
		v += m.GetCounter().GetValue()
	}
	return v
}

// value returns the single gauge or counter sample of name.
func (e exposition) value(t *testing.T, name string) float64 {
	t.Helper()
	ms := e.matching(t, name)
	if len(ms) != 1 {
		t.Fatalf("%s has %d samples", name, len(ms))
	}
	if g := ms[0].GetGauge(); g != nil {
		return g.GetValue()
	}
	return ms[0].GetCounter().GetValue()
}

// histCount returns the observation count of histogram name.
func (e exposition) histCount(t *testing.T, name string, labels ...string) uint64 {
	t.Helper()
	var n uint64
	for _, m := range e.matching(t, name, labels...) {
		n += m.GetHistogram().GetSampleCount()
	}
	return n
}

func TestMetricsParseAndMove(t *testing.T) {
	ts := start(t)
	admin := ts.admin("root")
	ts.register("user", "userpassword", "", "")
	tok := ts.login("user", "userpassword")
	ts.srv.SetModelLoadTime(1500 * 1e6) // 1.5 s

	before := scrape(t, ts, admin)
	for _, name := range []string{"gpt2d_http_requests_total", "gpt2d_http_request_duration_seconds", "gpt2d_auth_failures_total",
		"gpt2d_generated_tokens_total", "gpt2d_prompt_tokens_total", "gpt2d_time_to_first_token_seconds",
		"gpt2d_generation_tokens_per_second", "gpt2d_queue_depth", "gpt2d_active_sequences", "gpt2d_model_load_seconds"} {
		if _, ok := before[name]; !ok {
			t.Errorf("%s not exposed", name)
		}
	}
	if v := before.value(t, "gpt2d_model_load_seconds"); v != 1.5 {
		t.Errorf("model load time %v", v)
	}
	if v := before.value(t, "gpt2d_model_loaded"); v != 1 {
		t.Errorf("model loaded %v", v)
	}

	const n = 3
	for range n {
		wantStatus(t, ts.postJSON("/generate", tok, map[string]any{"prompt": "Count me", "max_new_tokens": 10}), 200)
	}
	streamGenerate(t, ts, tok, map[string]any{"prompt": "Stream me", "max_new_tokens": 10, "stream": true}, nil)
	wantStatus(t, ts.get("/users/me", "not.a.jwt"), 401)
	wantStatus(t, ts.get("/users/me", ""), 401)
	wantStatus(t, ts.get("/admin/users", tok), 403)
	wantStatus(t, ts.get("/users/12345", tok), 404) // an unknown path is one "other" series, not one per URL

	after := scrape(t, ts, admin)
	if d := after.counter(t, "gpt2d_http_requests_total", "method", "POST", "route", "/generate", "status", "200") -
		before.counter(t, "gpt2d_http_requests_total", "method", "POST", "route", "/generate", "status", "200"); d != n+1 {
		t.Errorf("POST /generate 200 moved by %v, want %d", d, n+1)
	}
	if d := after.histCount(t, "gpt2d_http_request_duration_seconds", "route", "/generate") -
		before.histCount(t, "gpt2d_http_request_duration_seconds", "route", "/generate"); d != n+1 {
		t.Errorf("latency observations moved by %d", d)
	}
	if after.counter(t, "gpt2d_http_requests_total", "route", "other", "status", "404") != 1 {
		t.Error("unknown path not counted under route other")
	}
	if len(after.matching(t, "gpt2d_http_requests_total", "route", "/users/12345")) != 0 {
		t.Error("a raw URL became a label")
	}
	if d := after.value(t, "gpt2d_generated_tokens_total") - before.value(t, "gpt2d_generated_tokens_total"); d < n+1 {
		t.Errorf("generated tokens moved by %v", d)
	}
	if d := after.value(t, "gpt2d_prompt_tokens_total") - before.value(t, "gpt2d_prompt_tokens_total"); d < 2*(n+1) {
		t.Errorf("prompt tokens moved by %v", d)
	}
	if d := after.histCount(t, "gpt2d_time_to_first_token_seconds") - before.histCount(t, "gpt2d_time_to_first_token_seconds"); d != n+1 {
		t.Errorf("time to first token observed %d times", d)
	}
	if d := after.histCount(t, "gpt2d_generation_tokens_per_second") - before.histCount(t, "gpt2d_generation_tokens_per_second"); d == 0 {
		t.Error("tokens/s never observed")
	}
	for reason, want := range map[string]float64{auth.ReasonMalformed: 1, reasonMissing: 1, reasonForbidden: 1} {
		if d := after.counter(t, "gpt2d_auth_failures_total", "reason", reason) - before.counter(t, "gpt2d_auth_failures_total", "reason", reason); d != want {
			t.Errorf("auth failures %s moved by %v, want %v", reason, d, want)
		}
	}
	if after.value(t, "gpt2d_active_sequences") != 0 || after.value(t, "gpt2d_queue_depth") != 0 {
		t.Error("idle engine shows load")
	}
}

func TestMetricsNeedAnAdminOrTheMetricsToken(t *testing.T) {
	const token = "prometheus-scrape-token-0123456789"
	ts := start(t, func(c *Config, _ *auth.Config) { c.MetricsToken = token })
	admin := ts.admin("root")
	ts.register("user", "userpassword", "", "")
	user := ts.login("user", "userpassword")

	wantDetail(t, ts.get("/metrics", ""), 401, "Not authenticated")
	wantDetail(t, ts.get("/metrics", "wrong-token"), 401, "Could not validate credentials")
	wantDetail(t, ts.get("/metrics", user), 403, "Admin access required")
	scrape(t, ts, admin)
	scrape(t, ts, token)
	// The metrics token opens /metrics and nothing else.
	for _, path := range []string{"/users/me", "/admin/users", "/v1/models"} {
		if r := ts.get(path, token); r.status != 401 {
			t.Errorf("metrics token on %s: %d", path, r.status)
		}
	}
	// /health stays public.
	req, _ := http.NewRequest("GET", ts.url+"/health", nil)
	resp, err := ts.http.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("health: %v %v", resp, err)
	}
	resp.Body.Close()
}

// metricNames are the names /metrics exported before it moved to
// prometheus/client_golang: dashboards and alerts depend on them.
var metricNames = []string{
	"gpt2d_http_requests_total", "gpt2d_http_request_duration_seconds", "gpt2d_auth_failures_total",
	"gpt2d_rate_limited_total", "gpt2d_generations_total", "gpt2d_time_to_first_token_seconds",
	"gpt2d_generation_tokens_per_second", "gpt2d_model_load_seconds", "gpt2d_model_loaded",
	"gpt2d_generated_tokens_total", "gpt2d_prompt_tokens_total", "gpt2d_engine_steps_total",
	"gpt2d_queue_depth", "gpt2d_active_sequences", "gpt2d_engine_slots",
}

func TestMetricsKeepEveryNameAndExposeTheRuntime(t *testing.T) {
	ts := start(t)
	admin := ts.admin("root")
	wantStatus(t, ts.postJSON("/generate", admin, map[string]any{"prompt": "Count me", "max_new_tokens": 3}), 200)
	fams := scrape(t, ts, admin)
	for _, name := range metricNames {
		if _, ok := fams[name]; !ok {
			t.Errorf("metric %s is no longer exported", name)
		}
	}
	// The Go and process collectors: goroutines, GC, memory, RSS, fds.
	for _, name := range []string{"go_goroutines", "go_gc_duration_seconds", "go_memstats_heap_alloc_bytes",
		"process_resident_memory_bytes", "process_open_fds", "process_cpu_seconds_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("runtime metric %s missing", name)
		}
	}
	rss := fams.value(t, "process_resident_memory_bytes")
	if rss <= 0 {
		t.Errorf("RSS %v", rss)
	}
	if runtime.GOOS == "linux" {
		if peak := fams.value(t, "gpt2d_peak_resident_memory_bytes"); peak < rss {
			t.Errorf("peak RSS %v below the RSS %v", peak, rss)
		}
	}
}

func TestRegistryCountsAndBuckets(t *testing.T) {
	r := newRegistry()
	c := r.counter("x_total", "X.", "l")
	c.add(2, "a\"b\\c\nd")
	c.inc("a\"b\\c\nd")
	h := r.histogram("y_seconds", "Y.", []float64{0.1, 1})
	h.observe(0.05)
	h.observe(0.5)
	h.observe(7)
	fams, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	m := byName["x_total"].Metric[0]
	if m.Label[0].GetValue() != "a\"b\\c\nd" || m.GetCounter().GetValue() != 3 {
		t.Fatalf("counter %v", m)
	}
	hist := byName["y_seconds"].Metric[0].GetHistogram()
	if hist.GetSampleCount() != 3 || hist.GetSampleSum() != 7.55 || hist.Bucket[0].GetCumulativeCount() != 1 || hist.Bucket[1].GetCumulativeCount() != 2 {
		t.Fatalf("histogram %v", hist)
	}
}

// TestPrefixCacheOverHTTP sends prompts sharing a long prefix to
// /v1/completions: the later ones take the prefix's KV from the engine's
// cache (gpt2d_prefix_cache_hit_tokens_total grows) and answer exactly as
// an engine without the cache does.
func TestPrefixCacheOverHTTP(t *testing.T) {
	ts := start(t)
	admin := ts.admin("root")
	// About 100 tokens of the tiny model's 128: its first 64-token block
	// is shared. The words are this test's own, so no other test's
	// requests have cached them.
	prefix := strings.Repeat("Prefix caching keeps the keys and values of shared prompts. ", 9)
	prompts := []string{prefix + "First", prefix + "Second one", prefix + "First"}
	complete := func(prompt string) completion {
		t.Helper()
		r := ts.postJSON("/v1/completions", admin, map[string]any{"model": "gpt2-tiny", "prompt": prompt, "max_tokens": 12,
			"temperature": 0, "logprobs": 1})
		wantStatus(t, r, 200)
		return decodeCompletion(t, r.body)
	}
	hits := func() float64 { return scrape(t, ts, admin).value(t, "gpt2d_prefix_cache_hit_tokens_total") }
	before := hits()
	var warm []completion
	for _, p := range prompts {
		warm = append(warm, complete(p))
	}
	if got := hits() - before; got < 2*64 {
		t.Errorf("prefix hit tokens grew by %v, want at least two 64-token blocks", got)
	}
	if fams := scrape(t, ts, admin); fams.value(t, "gpt2d_kv_cache_blocks") <= 0 || fams.value(t, "gpt2d_kv_cache_blocks_cached") <= 0 {
		t.Errorf("KV pool metrics: %v blocks, %v cached", fams.value(t, "gpt2d_kv_cache_blocks"), fams.value(t, "gpt2d_kv_cache_blocks_cached"))
	}
	cold := gpt2.NewEngine(engine.Model(), gpt2.EngineConfig{NoPrefixCache: true})
	defer cold.Close()
	ts.srv.SetGenerator(cold)
	for i, p := range prompts {
		c := complete(p)
		if c.Choices[0].Text != warm[i].Choices[0].Text || c.Usage.PromptTokens != warm[i].Usage.PromptTokens {
			t.Errorf("prompt %d: with the prefix cache %q, without %q", i, warm[i].Choices[0].Text, c.Choices[0].Text)
			continue
		}
		for k, lp := range c.Choices[0].Logprobs.TokenLogprobs {
			if w := warm[i].Choices[0].Logprobs.TokenLogprobs[k]; math.Abs(*w-*lp) > 1e-4 {
				t.Errorf("prompt %d token %d: logprob %g with the prefix cache, %g without", i, k, *w, *lp)
			}
		}
	}
	if warm[0].Choices[0].Text != warm[2].Choices[0].Text {
		t.Errorf("the same prompt twice: %q, then %q", warm[0].Choices[0].Text, warm[2].Choices[0].Text)
	}
}
