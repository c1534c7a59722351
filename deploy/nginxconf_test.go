package deploy

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// nginxConfFile is the load balancer's configuration of the Compose example.
const nginxConfFile = "compose/nginx.conf"

// nginxDirective is one directive of an nginx configuration, with its block.
type nginxDirective struct {
	name  string
	args  []string
	block []*nginxDirective // nil for a simple directive
}

// nginxConf is nginx.conf parsed into directives: enough of nginx's grammar
// (words, quoted strings, comments, blocks) to read what the tests check;
// nginx -t checks the rest.
type nginxConf struct{ top []*nginxDirective }

func readNginxConf(t *testing.T) nginxConf {
	t.Helper()
	b, err := os.ReadFile(nginxConfFile)
	if err != nil {
		t.Fatal(err)
	}
	top, rest, perr := parseNginxBlock(nginxTokens(string(b)))
	if perr != "" || len(rest) != 0 {
		t.Fatalf("nginx.conf: cannot parse: %s (%d tokens left)", perr, len(rest))
	}
	return nginxConf{top}
}

func nginxTokens(s string) []string {
	var toks []string
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == ';' || c == '{' || c == '}':
			toks = append(toks, string(c))
			i++
		case c == '"' || c == '\'':
			j := i + 1
			for j < len(s) && s[j] != c {
				if s[j] == '\\' {
					j++
				}
				j++
			}
			toks = append(toks, s[i+1:min(j, len(s))])
			i = j + 1
		default:
			j := i
			for j < len(s) && !strings.ContainsRune(" \t\r\n;{}#", rune(s[j])) {
				j++
			}
			toks = append(toks, s[i:j])
			i = j
		}
	}
	return toks
}

func parseNginxBlock(toks []string) ([]*nginxDirective, []string, string) {
	var out []*nginxDirective
	for len(toks) > 0 {
		if toks[0] == "}" {
			return out, toks, ""
		}
		d := &nginxDirective{name: toks[0]}
		toks = toks[1:]
		for len(toks) > 0 && toks[0] != ";" && toks[0] != "{" && toks[0] != "}" {
			d.args, toks = append(d.args, toks[0]), toks[1:]
		}
		if len(toks) == 0 {
			return nil, nil, "unterminated directive " + d.name
		}
		switch toks[0] {
		case ";":
			toks = toks[1:]
		case "{":
			var err string
			d.block, toks, err = parseNginxBlock(toks[1:])
			if err != "" {
				return nil, nil, err
			}
			if len(toks) == 0 || toks[0] != "}" {
				return nil, nil, "unclosed block " + d.name
			}
			toks = toks[1:]
			if d.block == nil {
				d.block = []*nginxDirective{}
			}
		default:
			return nil, nil, "unexpected } after " + d.name
		}
		out = append(out, d)
	}
	return out, nil, ""
}

// walk calls f for every directive with the chain of blocks around it.
func (c nginxConf) walk(f func(d *nginxDirective, parents []*nginxDirective)) {
	var rec func(ds []*nginxDirective, parents []*nginxDirective)
	rec = func(ds []*nginxDirective, parents []*nginxDirective) {
		for _, d := range ds {
			f(d, parents)
			if d.block != nil {
				rec(d.block, append(slices.Clone(parents), d))
			}
		}
	}
	rec(c.top, nil)
}

// upstreamServers returns the servers of every upstream block, sorted.
func (c nginxConf) upstreamServers() []string {
	var out []string
	c.walk(func(d *nginxDirective, parents []*nginxDirective) {
		if d.name == "server" && len(parents) > 0 && parents[len(parents)-1].name == "upstream" && len(d.args) > 0 {
			out = append(out, d.args[0])
		}
	})
	slices.Sort(out)
	return out
}

// directiveArgs returns the first argument of every directive named one of
// names.
func (c nginxConf) directiveArgs(names ...string) []string {
	var out []string
	c.walk(func(d *nginxDirective, _ []*nginxDirective) {
		if slices.Contains(names, d.name) && len(d.args) > 0 {
			out = append(out, d.args[0])
		}
	})
	return out
}

// proxySetHeader returns, for every block that proxies (proxy_pass), the
// value it sends in header: its own proxy_set_header, else the one it
// inherits (nginx inherits proxy_set_header only into blocks that set
// none), else "(not set)".
func (c nginxConf) proxySetHeader(header string) []string {
	var out []string
	c.walk(func(d *nginxDirective, parents []*nginxDirective) {
		if d.name != "proxy_pass" {
			return
		}
		v := "(not set)"
		for i := len(parents) - 1; i >= -1; i-- {
			var ds []*nginxDirective
			if i >= 0 {
				ds = parents[i].block
			} else {
				ds = c.top
			}
			found, any := "", false
			for _, s := range ds {
				if s.name == "proxy_set_header" && len(s.args) == 2 {
					any = true
					if strings.EqualFold(s.args[0], header) {
						found = s.args[1]
					}
				}
			}
			if any {
				if found != "" {
					v = found
				}
				break
			}
		}
		out = append(out, v)
	})
	return out
}
