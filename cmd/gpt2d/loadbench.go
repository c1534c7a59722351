package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// loadConfig is what `gpt2d bench --url` runs: clients concurrent HTTP
// clients, each sending requests back-to-back POST /v1/completions of
// promptTokens token ids and maxTokens new tokens, against every server
// in urls in turn (interleaved: one configuration on each server, then
// the next), reps times.
type loadConfig struct {
	urls         []string
	clients      []int
	requests     int // per client per repetition
	promptTokens int
	maxTokens    int
	reps         int
	stream       bool
	temperature  float64
	apiKey       string
}

// loadResult is one row of `gpt2d bench --url` output: one server under
// one number of clients, over every repetition.
type loadResult struct {
	URL      string  `json:"url"`
	Model    string  `json:"model"`
	Clients  int     `json:"clients"`
	Stream   bool    `json:"stream"`
	Prompt   int     `json:"prompt_tokens"`
	MaxNew   int     `json:"max_tokens"`
	Requests int     `json:"requests"` // answered with 200, over every repetition
	Errors   int     `json:"errors"`   // failed (status, transport or stream error)
	Tokens   int64   `json:"completion_tokens"`
	TokS     float64 `json:"tok_s"` // median over repetitions: completion tokens ÷ wall time
	TokSMin  float64 `json:"tok_s_min"`
	TokSMax  float64 `json:"tok_s_max"`
	Reps     int     `json:"reps"`
	// Percentiles over every request of every repetition, in ms; time to
	// first token only when streaming (the first event with text).
	TTFTp50    float64 `json:"ttft_ms_p50"`
	TTFTp99    float64 `json:"ttft_ms_p99"`
	LatencyP50 float64 `json:"latency_ms_p50"`
	LatencyP99 float64 `json:"latency_ms_p99"`
	// ClientCPU is the load client's own CPU time over its wall time, in
	// percent of one core: what it takes from a server on the same machine.
	ClientCPU float64 `json:"client_cpu_pct"`
	// FirstError is the first failure's description, when any.
	FirstError string `json:"first_error,omitempty"`
}

// loadBench runs cfg and writes a table (or JSON lines), with ratios of
// the first server to each other one when there are several.
func loadBench(ctx context.Context, w, stderr io.Writer, cfg loadConfig, asJSON bool) error {
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: max(slices.Max(cfg.clients), 2),
		DisableCompression:  true,
	}}
	models, err := warmServers(ctx, client, cfg)
	if err != nil {
		return err
	}
	results, err := runLoad(ctx, client, cfg, models, stderr)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(w)
		for _, r := range results {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
	} else {
		writeLoadTable(w, results, len(cfg.urls))
	}
	for _, r := range results {
		if r.Requests == 0 {
			return fmt.Errorf("bench: %s: every request failed (%s)", r.URL, r.FirstError)
		}
	}
	return nil
}

// warmServers returns the model each server serves, after one short
// request to each: a server's first call pays for page faults and lazy
// set-up that the measurement should not see.
func warmServers(ctx context.Context, client *http.Client, cfg loadConfig) ([]string, error) {
	models := make([]string, len(cfg.urls))
	for i, u := range cfg.urls {
		m, err := servedModel(ctx, client, u, cfg.apiKey)
		if err != nil {
			return nil, err
		}
		models[i] = m
		var warm loadSample
		loadRequest(ctx, client, u, m, cfg, 1<<30, min(cfg.maxTokens, 4), &warm)
		if warm.err != nil {
			return nil, fmt.Errorf("bench: %s: %w", u, warm.err)
		}
	}
	return models, nil
}

// runLoad sends cfg's rounds, every client count against every server in
// turn per repetition (interleaved, so a drift in the machine's load falls
// on all of them), and returns a result per client count and server,
// reporting failures on stderr.
func runLoad(ctx context.Context, client *http.Client, cfg loadConfig, models []string, stderr io.Writer) ([]loadResult, error) {
	type key struct{ url, clients int }
	rows := map[key]*loadResult{}
	samples := map[key][]loadSample{}
	rates := map[key][]float64{}
	cpu, wall := map[key]time.Duration{}, map[key]time.Duration{}
	for rep := range max(cfg.reps, 1) {
		for _, n := range cfg.clients {
			for ui, u := range cfg.urls {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				k := key{ui, n}
				if rows[k] == nil {
					rows[k] = &loadResult{URL: u, Model: models[ui], Clients: n, Stream: cfg.stream, Prompt: cfg.promptTokens, MaxNew: cfg.maxTokens}
				}
				cpu0 := cpuTime()
				got, took := loadRound(ctx, client, u, models[ui], cfg, n, rep)
				cpu[k] += cpuTime() - cpu0
				wall[k] += took
				var toks int64
				for _, s := range got {
					if s.err == nil {
						toks += int64(s.tokens)
					}
				}
				rates[k] = append(rates[k], float64(toks)/took.Seconds())
				samples[k] = append(samples[k], got...)
			}
		}
	}
	var results []loadResult
	for _, n := range cfg.clients {
		for ui := range cfg.urls {
			k := key{ui, n}
			r := rows[k]
			r.summarize(rates[k], samples[k])
			r.ClientCPU = 100 * cpu[k].Seconds() / wall[k].Seconds()
			if r.Errors > 0 {
				fmt.Fprintf(stderr, "bench: %s, %d clients: %d of %d requests failed; first: %s\n", r.URL, n, r.Errors, r.Errors+r.Requests, r.FirstError)
				if strings.Contains(r.FirstError, limitConcurrentSequences) || strings.Contains(r.FirstError, "generations in progress") {
					fmt.Fprintf(stderr, "bench: gpt2d lets one user run half its slots at once: serve with --user-sequences -1 to load it through one key\n")
				}
			}
			results = append(results, *r)
		}
	}
	return results, nil
}

// limitConcurrentSequences is the limit gpt2d's own routes name in a 429
// when one user has --user-sequences generations running (its OpenAI
// routes say "Too many generations in progress").
const limitConcurrentSequences = "concurrent_sequences"

// loadSample is one request's outcome.
type loadSample struct {
	ttft, latency time.Duration
	tokens        int
	err           error
}

// loadRound runs n clients of cfg.requests requests each against url and
// returns every request's outcome and the round's wall time.
func loadRound(ctx context.Context, client *http.Client, url, model string, cfg loadConfig, n, rep int) ([]loadSample, time.Duration) {
	out := make([]loadSample, n*cfg.requests)
	var wg sync.WaitGroup
	start := time.Now()
	for c := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range cfg.requests {
				// Every request has its own prompt (a server's prompt
				// cache must not help), the same on every server.
				seq := (rep*n+c)*cfg.requests + i
				loadRequest(ctx, client, url, model, cfg, seq, cfg.maxTokens, &out[c*cfg.requests+i])
			}
		}()
	}
	wg.Wait()
	return out, time.Since(start)
}

// loadPrompt is the prompt of request seq: promptTokens token ids.
func loadPrompt(promptTokens, seq int) []int {
	ids := make([]int, promptTokens)
	for k := range ids {
		ids[k] = (k*7919 + seq*104729 + 13) % 50000
	}
	return ids
}

// loadRequest sends one completion request and records its outcome in s.
// The body is what both gpt2d and llama-server take: token ids as the
// prompt, greedy or at a temperature, the usage asked for in the stream.
// ignore_eos (llama-server's and vLLM's) keeps servers that honour it
// generating max_tokens tokens; the tokens counted are the usage the
// server reports.
func loadRequest(ctx context.Context, client *http.Client, url, model string, cfg loadConfig, seq, maxTokens int, s *loadSample) {
	body := map[string]any{
		"model": model, "prompt": loadPrompt(cfg.promptTokens, seq), "max_tokens": maxTokens,
		"temperature": cfg.temperature, "seed": 1, "ignore_eos": true, "stream": cfg.stream,
	}
	if cfg.stream {
		body["stream_options"] = map[string]any{"include_usage": true}
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequestWithContext(ctx, "POST", url+"/v1/completions", bytes.NewReader(b))
	if err != nil {
		s.err = err
		return
	}
	req.Header.Set("Content-Type", "application/json")
	if cfg.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.apiKey)
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		s.err = err
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		s.err = fmt.Errorf("status %d: %s", resp.StatusCode, bytes.TrimSpace(msg))
		return
	}
	if cfg.stream {
		readLoadStream(resp.Body, start, s)
	} else {
		readLoadAnswer(resp.Body, start, s)
	}
}

// loadCompletion is what the load client reads of a completion or of one
// of its stream events.
type loadCompletion struct {
	Choices []struct {
		Text string `json:"text"`
	} `json:"choices"`
	Usage *struct {
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// readLoadAnswer records a whole (not streamed) completion's latency and
// the tokens its usage counts.
func readLoadAnswer(body io.Reader, start time.Time, s *loadSample) {
	var c loadCompletion
	if err := json.NewDecoder(body).Decode(&c); err != nil {
		s.err = fmt.Errorf("reading the answer: %w", err)
		return
	}
	if c.Usage == nil {
		s.err = errors.New("the answer has no usage")
		return
	}
	s.latency, s.tokens = time.Since(start), c.Usage.CompletionTokens
}

// readLoadStream records a streamed completion's time to first text, its
// latency to [DONE], and the tokens its usage chunk counts (else one per
// text event).
func readLoadStream(body io.Reader, start time.Time, s *loadSample) {
	rd := bufio.NewReader(body)
	chunks, usage := 0, -1
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			s.err = fmt.Errorf("stream ended before [DONE]: %w", err)
			return
		}
		data, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			break
		}
		var c loadCompletion
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			s.err = fmt.Errorf("stream event: %w", err)
			return
		}
		if len(c.Error) > 0 {
			s.err = fmt.Errorf("stream error: %s", c.Error)
			return
		}
		if c.Usage != nil {
			usage = c.Usage.CompletionTokens
		}
		if len(c.Choices) > 0 && c.Choices[0].Text != "" {
			if chunks == 0 {
				s.ttft = time.Since(start)
			}
			chunks++
		}
	}
	s.latency = time.Since(start)
	if s.tokens = usage; usage < 0 {
		s.tokens = chunks // no usage chunk: one token per text event
	}
}

// cpuTime is the CPU time this process has used (user and system).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// servedModel asks url's GET /v1/models for the first model's id, for
// the requests' model field.
func servedModel(ctx context.Context, client *http.Client, url, apiKey string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url+"/v1/models", nil)
	if err != nil {
		return "", fmt.Errorf("bench: --url %q: %w", url, err)
	}
	if apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+apiKey)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("bench: %w", err)
	}
	defer resp.Body.Close()
	var list struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("bench: GET %s/v1/models: status %d (an API key goes in GPT2D_API_KEY or --api-key-file)", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || len(list.Data) == 0 {
		return "", fmt.Errorf("bench: GET %s/v1/models lists no model", url)
	}
	return list.Data[0].ID, nil
}

// summarize fills r from the repetitions' rates and every request.
func (r *loadResult) summarize(rates []float64, samples []loadSample) {
	slices.Sort(rates)
	r.Reps = len(rates)
	r.TokS, r.TokSMin, r.TokSMax = rates[len(rates)/2], rates[0], rates[len(rates)-1]
	var ttft, lat []time.Duration
	for _, s := range samples {
		if s.err != nil {
			if r.Errors++; r.FirstError == "" {
				r.FirstError = s.err.Error()
			}
			continue
		}
		r.Requests++
		r.Tokens += int64(s.tokens)
		lat = append(lat, s.latency)
		if s.ttft > 0 {
			ttft = append(ttft, s.ttft)
		}
	}
	r.TTFTp50, r.TTFTp99 = percentileMS(ttft, 50), percentileMS(ttft, 99)
	r.LatencyP50, r.LatencyP99 = percentileMS(lat, 50), percentileMS(lat, 99)
}

// percentileMS is the p-th percentile of d (nearest rank) in ms; 0 when
// d is empty.
func percentileMS(d []time.Duration, p int) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := (len(d)*p + 99) / 100 // ceil(len·p/100), 1-based
	return float64(d[max(i, 1)-1].Microseconds()) / 1000
}

// writeLoadTable prints results (grouped by clients, servers in --url
// order) and, with several servers, the first one's ratios to the others.
func writeLoadTable(w io.Writer, results []loadResult, servers int) {
	fmt.Fprintf(w, "%-28s %7s %5s %4s %24s %19s %19s %10s\n", "url", "clients", "reqs", "err",
		"tok/s (min-max)", "ttft ms p50/p99", "latency ms p50/p99", "client cpu")
	for _, r := range results {
		fmt.Fprintf(w, "%-28s %7d %5d %4d %8.1f (%6.1f-%6.1f) %9.1f/%-9.1f %9.1f/%-9.1f %9.1f%%\n", r.URL, r.Clients, r.Requests, r.Errors,
			r.TokS, r.TokSMin, r.TokSMax, r.TTFTp50, r.TTFTp99, r.LatencyP50, r.LatencyP99, r.ClientCPU)
	}
	if servers < 2 {
		return
	}
	fmt.Fprintf(w, "\nratios of %s to each other server (one interleaved run; tok/s: higher is better for it, latency: the other's ÷ its own)\n", results[0].URL)
	fmt.Fprintf(w, "%-28s %7s %8s %14s %12s\n", "other", "clients", "tok/s ×", "p50 latency ×", "p50 ttft ×")
	for g := 0; g+servers <= len(results); g += servers {
		a := results[g]
		for _, b := range results[g+1 : g+servers] {
			fmt.Fprintf(w, "%-28s %7d %7.2f× %13.2f× %11s\n", b.URL, a.Clients, ratio(a.TokS, b.TokS),
				ratio(b.LatencyP50, a.LatencyP50), ratioOrDash(b.TTFTp50, a.TTFTp50))
		}
	}
}

func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

func ratioOrDash(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// readAPIKey returns the API key for --url: the file's first line, else
// GPT2D_API_KEY, else OPENAI_API_KEY (none: no Authorization header).
func readAPIKey(file string, getenv func(string) string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("bench: --api-key-file: %w", err)
		}
		line, _, _ := strings.Cut(string(b), "\n")
		return strings.TrimSpace(line), nil
	}
	if k := getenv("GPT2D_API_KEY"); k != "" {
		return k, nil
	}
	return getenv("OPENAI_API_KEY"), nil
}

// benchURLs is `gpt2d bench --url`: it checks the flags that apply to it
// and runs loadBench.
func benchURLs(ctx context.Context, w, stderr io.Writer, fs *flag.FlagSet, urls, clients, prompts string, newTokens, requests, reps int,
	stream bool, temperature float64, keyFile string, asJSON bool) error {
	var bad []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "model", "batch", "threads", "llama-bench":
			bad = append(bad, "--"+f.Name)
		}
	})
	if len(bad) > 0 {
		return fmt.Errorf("bench: %s load a model in process; --url loads a running server", strings.Join(bad, ", "))
	}
	cfg := loadConfig{requests: requests, maxTokens: newTokens, reps: reps, stream: stream, temperature: temperature}
	for _, u := range strings.Split(urls, ",") {
		u = strings.TrimRight(strings.TrimSpace(u), "/")
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return fmt.Errorf("bench: --url %q: want http://host:port", u)
		}
		cfg.urls = append(cfg.urls, u)
	}
	var err error
	if cfg.clients, err = positiveInts("--clients", clients); err != nil {
		return err
	}
	p, err := positiveInts("--prompt-tokens", prompts)
	if err != nil {
		return err
	}
	if len(p) != 1 || requests < 1 || newTokens < 1 {
		return errors.New("bench: with --url, one --prompt-tokens length, and --requests and --new-tokens of at least 1")
	}
	cfg.promptTokens = p[0]
	if cfg.apiKey, err = readAPIKey(keyFile, os.Getenv); err != nil {
		return err
	}
	return loadBench(ctx, w, stderr, cfg, asJSON)
}
