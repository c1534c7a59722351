package api

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gpt2d/auth"
)

// clientFrom is an HTTP client whose connections come from the loopback
// address ip (any of 127.0.0.0/8 is local on Linux).
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

func TestIdleConnectionFloodFromOneAddressStarvesNoOne(t *testing.T) {
	const floodConns, normal = 1100, 56
	ts := start(t, func(c *Config, _ *auth.Config) { c.HeaderTimeout = 2 * time.Second })
	ts.register("alice", "alicepassword", "", "")
	tok := ts.login("alice", "alicepassword")
	addr := strings.TrimPrefix(ts.url, "http://")

	// 1 100 connections from 127.0.0.1 that send half a header and wait.
	var flood []net.Conn
	defer func() {
		for _, c := range flood {
			c.Close()
		}
	}()
	for range floodConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("flood connection %d: %v", len(flood), err)
		}
		c.Write([]byte("GET /health HTTP/1.1\r\nHost: gpt2d\r\n"))
		flood = append(flood, c)
	}

	// Meanwhile another address is served in full.
	client := clientFrom("127.0.0.2")
	served := 0
	for range normal {
		req, _ := http.NewRequest("GET", ts.url+"/users/me", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := client.Do(req)
		if err != nil {
			t.Logf("normal request: %v", err)
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			served++
		}
	}
	t.Logf("during a %d-connection idle flood from one address: %d of %d normal requests served; %d flood connections open on the server",
		floodConns, served, normal, ts.srv.conns.open())
	if served != normal {
		t.Fatalf("%d of %d normal requests served during the flood", served, normal)
	}

	// The flooder got at most MaxConnsPerIP connections; the rest were
	// answered 429 (or, past the responders, closed) without a worker.
	if open := ts.srv.conns.open(); open > 128+1 { // the cap, and the normal client's keep-alive connection
		t.Fatalf("%d connections served", open)
	}
	refused := 0
	for _, c := range flood[len(flood)-50:] {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		if strings.Contains(line, " 429 ") || err == io.EOF {
			refused++
		}
	}
	if refused != 50 {
		t.Fatalf("%d of the last 50 flood connections were refused", refused)
	}
}

func TestConnectionWithoutACompleteHeaderIsCut(t *testing.T) {
	ts := start(t, func(c *Config, _ *auth.Config) {
		c.HeaderTimeout, c.ReadTimeout = 300*time.Millisecond, time.Minute
	})
	addr := strings.TrimPrefix(ts.url, "http://")

	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.Write([]byte("GET /health HTTP/1.1\r\nHost: gpt2d\r\n")) // …and never the end of the header
	done := make(chan error, 1)
	go func() {
		_, err := io.ReadAll(slow) // returns when the server closes the connection
		done <- err
	}()
	select {
	case <-done:
	case <-time.After(20 * time.Second): // the read timeout (a minute) would be far later
		t.Fatal("a connection that never completed its header is still open")
	}

	// A complete header followed by a body slower than the header deadline
	// (but within the read timeout) is served.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"username":"slowpoke","password":"a-long-password"}`
	c.Write([]byte("POST /users HTTP/1.1\r\nHost: gpt2d\r\nContent-Type: application/json\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n"))
	time.Sleep(900 * time.Millisecond)
	c.Write([]byte(body))
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.Contains(line, " 200 ") {
		t.Fatalf("slow body: %q, %v", line, err)
	}
}

func TestConnectionsPerAddressAreCappedButTrustedProxiesExempt(t *testing.T) {
	ts := start(t, func(c *Config, _ *auth.Config) {
		c.MaxConnsPerIP = 3
		c.ProxyHeader, c.TrustedProxies = "X-Forwarded-For", []string{"127.0.0.4"}
	})
	addr := strings.TrimPrefix(ts.url, "http://")
	dial := func(ip string) net.Conn {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := d.DialContext(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	status := func(c net.Conn) string {
		c.Write([]byte("GET /health HTTP/1.1\r\nHost: gpt2d\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	var wg sync.WaitGroup
	held := []net.Conn{dial("127.0.0.3"), dial("127.0.0.3"), dial("127.0.0.3")}
	waitUntil(t, func() bool { return ts.srv.conns.open() == 3 })
	if line := status(dial("127.0.0.3")); !strings.Contains(line, " 429 ") {
		t.Fatalf("4th connection from one address: %q", line)
	}
	for range 5 { // the proxy may hold many
		c := dial("127.0.0.4")
		wg.Add(1)
		go func() {
			defer wg.Done()
			if line := status(c); !strings.Contains(line, " 200 ") {
				t.Errorf("connection from the trusted proxy: %q", line)
			}
		}()
	}
	wg.Wait()
	held[0].Close() // a slot frees when a connection closes
	waitUntil(t, func() bool { return ts.srv.conns.open() <= 7 })
	if line := status(dial("127.0.0.3")); !strings.Contains(line, " 200 ") {
		t.Fatalf("after one closed: %q", line)
	}
}
