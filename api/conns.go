package api

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// Connection floods. fasthttp serves at most Config.MaxConns connections;
// one address holding them all (idle, or sending a header a byte at a
// time) would starve every other client. Two bounds stop that: a
// connection has Config.HeaderTimeout to deliver a complete request
// header (fasthttp's ReadTimeout, raised to Config.ReadTimeout for the
// body once the header is in, through HeaderReceived), and one address
// holds at most Config.MaxConnsPerIP connections — an IPv6 client is its
// /64, which one host usually has whole. Connections beyond the cap are
// answered 429 and closed (see refuse), never reaching a worker. Trusted proxies (Config.TrustedProxies) are exempt: every client
// behind them shares their address.

// connTracker counts connections per address and knows every open
// connection's state (for Shutdown, through fasthttp's ConnState hook). It
// is safe for concurrent use.
type connTracker struct {
	perIP  int // 0: no cap
	exempt []*net.IPNet

	mu     sync.Mutex
	byAddr map[string]int
	conns  map[*trackedConn]fasthttp.ConnState
	active int           // connections in StateActive: reading a request or answering it
	idle   chan struct{} // closed and replaced when active drops to 0

	refusing chan struct{} // semaphore of running refusers
}

func newConnTracker(perIP int, trusted []string) *connTracker {
	t := &connTracker{perIP: perIP, byAddr: map[string]int{}, conns: map[*trackedConn]fasthttp.ConnState{},
		idle: make(chan struct{}), refusing: make(chan struct{}, maxRefusing)}
	for _, p := range trusted {
		if _, n, err := net.ParseCIDR(p); err == nil {
			t.exempt = append(t.exempt, n)
		} else if ip := net.ParseIP(p); ip != nil {
			bits := 8 * len(ip.To16())
			if ip.To4() != nil {
				ip, bits = ip.To4(), 32
			}
			t.exempt = append(t.exempt, &net.IPNet{IP: ip, Mask: net.CIDRMask(bits, bits)})
		}
	}
	return t
}

// addrKey is what the per-address cap counts: the IPv4 address, or the
// /64 of an IPv6 one. ok is false for a connection that is not TCP/IP.
func (t *connTracker) addrKey(c net.Conn) (key string, ok bool) {
	ta, isTCP := c.RemoteAddr().(*net.TCPAddr)
	if !isTCP {
		return "", false
	}
	for _, n := range t.exempt {
		if n.Contains(ta.IP) {
			return "", false
		}
	}
	if ip4 := ta.IP.To4(); ip4 != nil {
		return ip4.String(), true
	}
	return ta.IP.Mask(net.CIDRMask(64, 128)).String() + "/64", true
}

// listener wraps ln so that Accept enforces the per-address cap and
// tracks the connections it returns.
func (t *connTracker) listener(ln net.Listener) net.Listener {
	return &trackingListener{Listener: ln, t: t}
}

type trackingListener struct {
	net.Listener
	t *connTracker
}

// tooManyConns is the whole answer to a connection over the cap.
var tooManyConns = func() []byte {
	body := `{"detail":"Too many connections from your address"}`
	return []byte("HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\nConnection: close\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
}()

func (l *trackingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key, counted := l.t.addrKey(c)
		if counted && !l.t.admit(key) {
			l.t.refuse(c)
			continue
		}
		tc := &trackedConn{Conn: c, t: l.t, key: key, counted: counted}
		l.t.mu.Lock()
		l.t.conns[tc] = fasthttp.StateNew
		l.t.mu.Unlock()
		return tc, nil
	}
}

// Refusing. A connection over the cap is answered by a small responder
// rather than a worker: it reads the request header (so an HTTP client
// gets a 429 for its request, not a reset), answers, half-closes and
// drains briefly so the answer is not lost to a reset, all within
// refuseDeadline. At most maxRefusing run at once; beyond that a
// connection is closed unanswered.
const (
	refuseDeadline = time.Second
	maxRefusing    = 1024
)

func (t *connTracker) refuse(c net.Conn) {
	select {
	case t.refusing <- struct{}{}:
	default:
		c.Close()
		return
	}
	go func() {
		defer func() { <-t.refusing }()
		defer c.Close()
		c.SetDeadline(time.Now().Add(refuseDeadline))
		br := bufio.NewReaderSize(c, 1024)
		for read := 0; read < 8<<10; {
			line, err := br.ReadSlice('\n')
			read += len(line)
			if err != nil && err != bufio.ErrBufferFull {
				break // the header never completed: answer anyway
			}
			if err == nil && len(bytes.TrimRight(line, "\r\n")) == 0 {
				break
			}
		}
		if _, err := c.Write(tooManyConns); err != nil {
			return
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.CloseWrite()
			io.Copy(io.Discard, io.LimitReader(br, 64<<10))
		}
	}()
}

func (t *connTracker) admit(key string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.perIP > 0 && t.byAddr[key] >= t.perIP {
		return false
	}
	t.byAddr[key]++
	return true
}

// trackedConn gives its address's slot back when closed.
type trackedConn struct {
	net.Conn
	t       *connTracker
	key     string
	counted bool
	once    sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		t := c.t
		t.mu.Lock()
		if c.counted {
			if t.byAddr[c.key]--; t.byAddr[c.key] <= 0 {
				delete(t.byAddr, c.key)
			}
		}
		if state, open := t.conns[c]; open {
			t.setStateLocked(c, state, fasthttp.StateClosed)
			delete(t.conns, c)
		}
		t.mu.Unlock()
	})
	return c.Conn.Close()
}

// connState is fasthttp's ConnState hook.
func (t *connTracker) connState(c net.Conn, state fasthttp.ConnState) {
	tc, ok := c.(*trackedConn)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, open := t.conns[tc]; open {
		t.setStateLocked(tc, old, state)
	}
}

// setStateLocked moves c from state old to state, keeping the count of
// active connections and waking waitIdle when it drops to 0.
func (t *connTracker) setStateLocked(c *trackedConn, old, state fasthttp.ConnState) {
	t.conns[c] = state
	switch {
	case old != fasthttp.StateActive && state == fasthttp.StateActive:
		t.active++
	case old == fasthttp.StateActive && state != fasthttp.StateActive:
		if t.active--; t.active == 0 {
			close(t.idle)
			t.idle = make(chan struct{})
		}
	}
}

// waitIdle waits until no connection is in the middle of a request (its
// response written), or ctx ends.
func (t *connTracker) waitIdle(ctx context.Context) {
	for {
		t.mu.Lock()
		active, wake := t.active, t.idle
		t.mu.Unlock()
		if active == 0 {
			return
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return
		}
	}
}

// closeAll closes every open connection.
func (t *connTracker) closeAll() {
	t.mu.Lock()
	conns := make([]*trackedConn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// open returns the number of open connections.
func (t *connTracker) open() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}
