package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBenchLoadsARunningServer drives `gpt2d bench --url` against a real
// gpt2d serve on loopback (the tiny model, a local API key): streamed and
// whole completions, one and several clients, and two servers compared.
func TestBenchLoadsARunningServer(t *testing.T) {
	const key = "sk-load-bench-0123456789"
	s := startServe(t, filepath.Join(t.TempDir(), "gpt2d.db"), []string{"GPT2D_API_KEY=" + key}, "--slots", "4", "--user-sequences", "-1")
	t.Setenv("GPT2D_API_KEY", key)
	run := func(args ...string) (string, string, error) {
		var out, errOut bytes.Buffer
		err := bench(context.Background(), &out, &errOut, args)
		return out.String(), errOut.String(), err
	}
	for _, stream := range []string{"true", "false"} {
		out, stderr, err := run("--url", s.url, "--clients", "1,3", "--requests", "2", "--prompt-tokens", "5", "--new-tokens", "6",
			"--reps", "2", "--stream="+stream, "--json")
		if err != nil {
			t.Fatalf("stream %s: %v\n%s", stream, err, stderr)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 {
			t.Fatalf("stream %s: want a line per number of clients, got %q", stream, out)
		}
		for i, line := range lines {
			var r loadResult
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatal(err)
			}
			clients := []int{1, 3}[i]
			ok := r.URL == s.url && r.Model == "gpt2" && r.Clients == clients && r.Reps == 2 && r.Errors == 0 &&
				r.Requests == 2*clients*2 && r.Tokens > 0 && r.Tokens <= int64(r.Requests*6) &&
				r.TokSMin > 0 && r.TokSMin <= r.TokS && r.TokS <= r.TokSMax &&
				r.LatencyP50 > 0 && r.LatencyP50 <= r.LatencyP99
			if stream == "true" {
				ok = ok && r.TTFTp50 > 0 && r.TTFTp50 <= r.TTFTp99 && r.TTFTp50 <= r.LatencyP99
			} else {
				ok = ok && r.TTFTp50 == 0
			}
			if !ok {
				t.Errorf("stream %s: implausible result %+v", stream, r)
			}
		}
	}
	// The server's own counters saw every request: 2 reps × (1+3) clients
	// × 2 requests × 2 modes, and the warm-up request of each run.
	if got := completions(t, s, key); got != 2*(2*4*2)+2 {
		t.Errorf("gpt2d_generations_total{completions} = %v, want %d", got, 2*(2*4*2)+2)
	}

	// Two servers (here the same one twice): a table and its ratios.
	out, stderr, err := run("--url", s.url+","+s.url+"/", "--clients", "2", "--requests", "1", "--prompt-tokens", "3", "--new-tokens", "4", "--reps", "1")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	_, ratios, ok := strings.Cut(out, "ratios of "+s.url)
	rows := strings.Split(strings.TrimSpace(ratios), "\n")
	if !ok || len(rows) != 3 || !strings.HasPrefix(rows[2], s.url+"/ ") && !strings.HasPrefix(rows[2], s.url+" ") || strings.Count(rows[2], "×") != 3 {
		t.Errorf("no ratio row in:\n%s", out)
	}

	// One user's cap on sequences: the failures are counted and named.
	capped := startServe(t, filepath.Join(t.TempDir(), "gpt2d.db"), []string{"GPT2D_API_KEY=" + key}, "--slots", "2", "--user-sequences", "1",
		"--max-new-tokens", "120")
	out, stderr, err = run("--url", capped.url, "--clients", "4", "--requests", "3", "--prompt-tokens", "3", "--new-tokens", "120", "--reps", "1", "--json")
	var r loadResult
	if err != nil || json.Unmarshal([]byte(out), &r) != nil || r.Errors == 0 || r.Requests == 0 || r.Errors+r.Requests != 12 ||
		!strings.Contains(r.FirstError, "429") || !strings.Contains(stderr, "--user-sequences -1") {
		t.Errorf("a capped server: %v %+v\n%s", err, r, stderr)
	}

	// A wrong key, a bad URL and in-process flags are refused.
	t.Setenv("GPT2D_API_KEY", "sk-wrong-key-0123456789")
	if _, _, err := run("--url", s.url); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("a wrong key: %v", err)
	}
	for _, args := range [][]string{{"--url", "127.0.0.1:1"}, {"--url", s.url, "--batch", "8"}, {"--url", s.url, "--clients", "0"}} {
		if _, _, err := run(args...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

// TestLoadPercentiles: nearest-rank percentiles in ms.
func TestLoadPercentiles(t *testing.T) {
	ms := func(v ...int) (d []time.Duration) {
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	for _, c := range []struct {
		in   []time.Duration
		p    int
		want float64
	}{
		{nil, 50, 0},
		{ms(7), 99, 7},
		{ms(4, 1, 3, 2), 50, 2},
		{ms(4, 1, 3, 2), 99, 4},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9},
	} {
		if got := percentileMS(c.in, c.p); got != c.want {
			t.Errorf("p%d of %v = %v, want %v", c.p, c.in, got, c.want)
		}
	}
}

// completions is the server's count of /v1/completions generations, over
// every finish reason.
func completions(t *testing.T, s *server, key string) float64 {
	code, body := s.call(t, "GET", "/metrics", key, "")
	if code != 200 {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	var n float64
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, "gpt2d_generations_total{") && strings.Contains(line, `endpoint="completions"`) {
			f, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			n += f
		}
	}
	return n
}
