package api

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// clientAddrs decides the client address of a request: the socket's peer,
// or, behind trusted proxies, the address they report in ProxyHeader.
//
// Each proxy appends the address it received the request from to
// X-Forwarded-For, after whatever the client wrote there itself; so only
// the right end of the list can be believed. The client is the right-most
// address that is not one of the trusted proxies. It must parse as an IP
// address; anything else (a forged or malformed list) falls back to the
// socket address — never to a string the client chose.
type clientAddrs struct {
	header  string
	trusted []netip.Prefix
}

// newClientAddrs parses the trusted proxies: IP addresses or CIDR
// prefixes.
func newClientAddrs(header string, trusted []string) (*clientAddrs, error) {
	a := &clientAddrs{header: header}
	for _, t := range trusted {
		t = strings.TrimSpace(t)
		p, err := netip.ParsePrefix(t)
		if err != nil {
			addr, aerr := netip.ParseAddr(t)
			if aerr != nil {
				return nil, fmt.Errorf("trusted proxy %q: not an IP address or CIDR prefix", t)
			}
			p = netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen())
		}
		a.trusted = append(a.trusted, p.Masked())
	}
	return a, nil
}

func (a *clientAddrs) isTrusted(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range a.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// of returns the client address of c, as a canonical IP string.
func (a *clientAddrs) of(c *fiber.Ctx) string {
	peer, ok := netip.AddrFromSlice(c.Context().RemoteIP())
	if !ok {
		return c.Context().RemoteIP().String()
	}
	peer = peer.Unmap()
	if a.header == "" || !a.isTrusted(peer) {
		return peer.String()
	}
	var values []string
	c.Request().Header.VisitAll(func(k, v []byte) {
		if strings.EqualFold(string(k), a.header) {
			values = append(values, strings.Split(string(v), ",")...)
		}
	})
	for i := len(values) - 1; i >= 0; i-- {
		addr, ok := parseForwarded(values[i])
		if !ok {
			return peer.String()
		}
		if !a.isTrusted(addr) {
			return addr.String()
		}
	}
	return peer.String() // every hop is a trusted proxy
}

// parseForwarded reads one entry of a forwarding header: an IP address,
// optionally with a port ("192.0.2.1:443", "[2001:db8::1]:443").
func parseForwarded(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if addr, err := netip.ParseAddr(s); err == nil && addr.Zone() == "" {
		return addr.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

// clientIP returns the client address of the request (see clientAddrs),
// computed once per request.
func (s *Server) clientIP(c *fiber.Ctx) string {
	if ip, ok := c.Locals(localsClientIP).(string); ok {
		return ip
	}
	ip := s.addrs.of(c)
	c.Locals(localsClientIP, ip)
	return ip
}
