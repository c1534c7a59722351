package api

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gpt2d/auth"
)

// loadConns is the number of concurrent client connections of the load
// benchmarks.
const loadConns = 64

// runLoad sends b.N requests over loadConns keep-alive connections and
// reports requests/s and latency percentiles.
func runLoad(b *testing.B, newReq func() *http.Request, wantStatus int) {
	client := &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: loadConns, MaxConnsPerHost: loadConns,
	}, Timeout: time.Minute}
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range loadConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				resp, err := client.Do(newReq())
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != wantStatus {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, resp.Status)
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failures.Load(); f > 0 {
		b.Fatalf("%d of %d requests failed; first: %v", f, b.N, firstErr.Load())
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "req/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
}

// BenchmarkUsersMe measures an authenticated cheap endpoint: JWT check,
// user re-read from bbolt, JSON response.
func BenchmarkUsersMe(b *testing.B) {
	ts := start(b)
	ts.srv.log = discardLogger() // measure serving, not log writing to a buffer
	if _, err := ts.auth.Register("bench", "bench-password", "user"); err != nil {
		b.Fatal(err)
	}
	tok := ts.login("bench", "bench-password")
	runLoad(b, func() *http.Request {
		req, _ := http.NewRequest("GET", ts.url+"/users/me", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		return req
	}, 200)
}

// BenchmarkToken measures POST /token at the default bcrypt cost.
func BenchmarkToken(b *testing.B) {
	ts := start(b, func(_ *Config, a *auth.Config) { a.BcryptCost = auth.DefaultBcryptCost })
	ts.srv.log = discardLogger()
	if _, err := ts.auth.Register("bench", "bench-password", "user"); err != nil {
		b.Fatal(err)
	}
	form := url.Values{"username": {"bench"}, "password": {"bench-password"}}.Encode()
	runLoad(b, func() *http.Request {
		req, _ := http.NewRequest("POST", ts.url+"/token", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req
	}, 200)
}
