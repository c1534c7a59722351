package main

import (
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"gpt2d/store/pgtest"
)

// The store figures of the replicas issue, measured in one run on this
// machine:
//
//	go test -run '^$' -bench 'Store' -benchtime 1x ./cmd/gpt2d/
//
// Each sub-benchmark starts the built binary on a bbolt file, on
// PostgreSQL, and as two replicas on one PostgreSQL database (requests
// alternating between them), and drives it with 64 concurrent
// keep-alive connections for loadFor.

const (
	loadConns = 64
	loadFor   = 5 * time.Second
)

// storeSetups are the deployments compared: one function per sub-
// benchmark returning the servers to load.
func storeSetups(b *testing.B, env []string, extra ...string) []struct {
	name  string
	start func(b *testing.B) []*server
} {
	start := func(b *testing.B, spec string) *server {
		cmd := exec.Command(gpt2dBinary(b), serveArgs(spec, extra...)...)
		cmd.Env = append(os.Environ(), env...)
		return serve(b, cmd)
	}
	return []struct {
		name  string
		start func(b *testing.B) []*server
	}{
		{"bbolt", func(b *testing.B) []*server {
			return []*server{start(b, filepath.Join(b.TempDir(), "gpt2d.db"))}
		}},
		{"postgres", func(b *testing.B) []*server {
			return []*server{start(b, pgtest.NewDatabase(b))}
		}},
		{"postgres-2-replicas", func(b *testing.B) []*server {
			url := pgtest.NewDatabase(b)
			return []*server{start(b, url), start(b, url)}
		}},
	}
}

// load sends requests made by mk from loadConns workers, spreading them
// over servers, for loadFor; it returns requests per second, the 99th
// percentile latency and the count of non-2xx answers.
func load(b *testing.B, servers []*server, mk func(s *server, worker int) *http.Request) (rps float64, p99 time.Duration, bad int) {
	codes := map[int]int{}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: loadConns, MaxConnsPerHost: loadConns}, Timeout: time.Minute}
	var mu sync.Mutex
	var lat []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(loadFor)
	for w := range loadConns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			nbad := 0
			for i := w; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				resp, err := client.Do(mk(servers[i%len(servers)], w))
				if err != nil {
					nbad++
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 {
					nbad++
					mu.Lock()
					codes[resp.StatusCode]++
					mu.Unlock()
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			bad += nbad
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if bad > 0 {
		b.Logf("answers other than 2xx: %v", codes)
	}
	slices.Sort(lat)
	if len(lat) == 0 {
		b.Fatal("no request completed")
	}
	return float64(len(lat)) / elapsed.Seconds(), lat[len(lat)*99/100], bad
}

// BenchmarkStoreUsersMe measures an authenticated cheap request, GET
// /users/me (token check, user read, JSON), per deployment.
func BenchmarkStoreUsersMe(b *testing.B) {
	for _, setup := range storeSetups(b, []string{"GPT2D_BCRYPT_COST=4"}) {
		b.Run(setup.name, func(b *testing.B) {
			servers := setup.start(b)
			servers[0].call(b, "POST", "/users", "", `{"username":"bench","password":"bench-password"}`)
			tok := servers[0].token(b, "bench", "bench-password")
			for range b.N {
				rps, p99, bad := load(b, servers, func(s *server, _ int) *http.Request {
					req, _ := http.NewRequest("GET", s.url+"/users/me", nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					return req
				})
				if bad > 0 {
					b.Fatalf("%d requests failed", bad)
				}
				b.ReportMetric(rps, "req/s")
				b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
			}
		})
	}
}

// BenchmarkStoreLogin measures POST /token with the default bcrypt cost
// (11), per deployment: bcrypt-bound. Each connection logs in its own
// user from its own address (X-Forwarded-For from a trusted loopback
// proxy), so that no throttle counts one client's concurrent attempts.
func BenchmarkStoreLogin(b *testing.B) {
	for _, setup := range storeSetups(b, []string{"GPT2D_BCRYPT_COST=11", "GPT2D_SIGNUPS_PER_HOUR=0"},
		"--proxy-header", "X-Forwarded-For", "--trusted-proxies", "127.0.0.1") {
		b.Run(setup.name, func(b *testing.B) {
			servers := setup.start(b)
			forms := make([]string, loadConns)
			for w := range loadConns {
				name := fmt.Sprintf("bench%d", w)
				if code, body := servers[0].call(b, "POST", "/users", "", `{"username":"`+name+`","password":"bench-password"}`); code != 200 {
					b.Fatalf("register: %d %s", code, body)
				}
				forms[w] = neturl.Values{"username": {name}, "password": {"bench-password"}}.Encode()
			}
			for range b.N {
				rps, p99, bad := load(b, servers, func(s *server, w int) *http.Request {
					req, _ := http.NewRequest("POST", s.url+"/token", strings.NewReader(forms[w]))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					req.Header.Set("X-Forwarded-For", fmt.Sprintf("10.0.%d.%d", w/256, w%256))
					return req
				})
				if bad > 0 {
					b.Fatalf("%d logins failed", bad)
				}
				b.ReportMetric(rps, "req/s")
				b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
			}
		})
	}
}

// BenchmarkStoreRevocationPropagation logs out on replica A and polls
// replica B with the same token until it is refused, 100 times; it
// reports the median and the maximum delay from A's answer to B's first
// refusal.
func BenchmarkStoreRevocationPropagation(b *testing.B) {
	url := pgtest.NewDatabase(b)
	env := []string{"GPT2D_BCRYPT_COST=4"}
	start := func() *server {
		cmd := exec.Command(gpt2dBinary(b), serveArgs(url)...)
		cmd.Env = append(os.Environ(), env...)
		return serve(b, cmd)
	}
	a, c := start(), start()
	a.call(b, "POST", "/users", "", `{"username":"bench","password":"bench-password"}`)
	for range b.N {
		var delays []time.Duration
		for range 100 {
			tok := a.token(b, "bench", "bench-password")
			if code := c.status(b, "GET", "/users/me", tok, ""); code != 200 {
				b.Fatalf("B refuses a fresh token: %d", code)
			}
			a.status(b, "POST", "/logout", tok, "")
			t0 := time.Now()
			for c.status(b, "GET", "/users/me", tok, "") != 401 {
				if time.Since(t0) > 10*time.Second {
					b.Fatal("B never refused the token")
				}
			}
			delays = append(delays, time.Since(t0))
			// iat has millisecond precision: the next login must be issued
			// after the logout's instant.
			time.Sleep(2 * time.Millisecond)
		}
		slices.Sort(delays)
		b.ReportMetric(float64(delays[len(delays)/2].Microseconds())/1000, "median-ms")
		b.ReportMetric(float64(delays[len(delays)-1].Microseconds())/1000, "max-ms")
		fmt.Fprintf(os.Stderr, "revocation A→B over %d trials: median %s, max %s\n", len(delays), delays[len(delays)/2], delays[len(delays)-1])
	}
}
