package deploy

import (
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// interpolation matches Compose's ${VAR}, ${VAR:-default}, ${VAR:?error}.
var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}`)

// interpolate replaces Compose variables by vars[name], else by their
// default, else by "x"; a ${VAR:?...} without a value must say what to set.
func interpolate(t *testing.T, s string, vars map[string]string) string {
	return interpolation.ReplaceAllStringFunc(s, func(m string) string {
		g := interpolation.FindStringSubmatch(m)
		if v, ok := vars[g[1]]; ok {
			return v
		}
		switch g[2] {
		case ":-", "-":
			return g[3]
		case ":?", "?":
			if strings.TrimSpace(g[3]) == "" {
				t.Errorf("compose: ${%s:?} without a message saying what to set", g[1])
			}
		}
		return "x"
	})
}

// composeService is one service of compose.yaml, interpolated.
type composeService struct {
	name    string
	raw     map[string]any
	env     map[string]string
	command []string // the image's CMD when the service sets none
	mounts  map[string]composeMount
}

// composeMount is a volume of a service by its path in the container.
type composeMount struct {
	source   string // named volume or ./path
	readOnly bool
}

// The Compose example: its directory and file.
const (
	composeDir  = "compose"
	composeYAML = "compose/compose.yaml"
)

type composeFile struct {
	secrets  map[string]any
	services map[string]*composeService
	volumes  map[string]any
	networks map[string]any
}

func readCompose(t *testing.T, vars map[string]string) composeFile {
	t.Helper()
	docs := readYAML(t, composeYAML)
	if len(docs) != 1 {
		t.Fatalf("compose.yaml: %d documents, want 1", len(docs))
	}
	img := readDockerfile(t)
	f := composeFile{secrets: getMap(docs[0], "secrets"), services: map[string]*composeService{}, volumes: getMap(docs[0], "volumes"), networks: getMap(docs[0], "networks")}
	for name, v := range getMap(docs[0], "services") {
		s := &composeService{name: name, raw: v.(map[string]any), env: map[string]string{}, mounts: map[string]composeMount{}}
		for k, v := range getMap(v, "environment") {
			s.env[k] = interpolate(t, getStr(v), vars)
		}
		if getList(v, "environment") != nil {
			t.Errorf("compose %s: environment as a list; use a map so the tests can read it", name)
		}
		if c := getList(v, "command"); c != nil {
			s.command = strList(c)
		} else if getStr(v, "command") != "" {
			t.Errorf("compose %s: command as a string; use the exec (list) form", name)
		} else {
			s.command = img.cmd
		}
		for _, m := range getList(v, "volumes") {
			parts := strings.Split(getStr(m), ":")
			if len(parts) < 2 {
				t.Errorf("compose %s: volume %q: want SOURCE:TARGET[:ro]", name, getStr(m))
				continue
			}
			s.mounts[parts[1]] = composeMount{source: parts[0], readOnly: len(parts) > 2 && parts[2] == "ro"}
		}
		f.services[name] = s
	}
	return f
}

// mountOf returns the mount holding path in s, and path inside it.
func (s *composeService) mountOf(path string) (composeMount, string, bool) {
	best := ""
	for target := range s.mounts {
		if (path == target || strings.HasPrefix(path, strings.TrimSuffix(target, "/")+"/")) && len(target) > len(best) {
			best = target
		}
	}
	if best == "" {
		return composeMount{}, "", false
	}
	return s.mounts[best], strings.TrimPrefix(path, best), true
}

func (s *composeService) isGPT2D() bool { return strings.HasPrefix(getStr(s.raw, "image"), "gpt2d:") }

func (s *composeService) ipv4(t *testing.T) netip.Addr {
	for _, n := range getMap(s.raw, "networks") {
		if a := getStr(n, "ipv4_address"); a != "" {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				t.Fatalf("compose %s: ipv4_address %q: %v", s.name, a, err)
			}
			return ip
		}
	}
	return netip.Addr{}
}

func TestComposeMatchesTheBinary(t *testing.T) {
	c := readCompose(t, nil)
	img := readDockerfile(t)

	var replicas []*composeService
	for _, name := range sortedKeys(c.services) {
		s := c.services[name]
		for dep := range getMap(s.raw, "depends_on") {
			if c.services[dep] == nil {
				t.Errorf("compose %s: depends on %s, which is no service", name, dep)
			}
		}
		for target, m := range s.mounts {
			if strings.HasPrefix(m.source, ".") {
				if _, err := os.Stat(filepath.Join(composeDir, m.source)); err != nil && m.source != "./tls" {
					t.Errorf("compose %s: mounts %s at %s: %v", name, m.source, target, err)
				}
			} else if _, ok := c.volumes[m.source]; !ok {
				t.Errorf("compose %s: volume %s is not declared under volumes:", name, m.source)
			}
		}
		if !s.isGPT2D() {
			continue
		}
		for target, m := range s.mounts {
			if !m.readOnly && !strings.HasPrefix(m.source, ".") && !img.writable(target) {
				t.Errorf("compose %s: writes the volume %s at %s, which the image does not give its user %s: it would start out owned by root",
					name, m.source, target, img.user)
			}
		}
		if getMap(s.raw, "build") == nil {
			t.Errorf("compose %s: the gpt2d image without a build: section cannot be built by compose", name)
		}
		sub := checkInvocation(t, "compose "+name, s.command, s.env)
		if slices.Equal(sub, []string{"serve"}) {
			replicas = append(replicas, s)
		}
	}
	if len(replicas) < 2 {
		t.Fatalf("compose: %d gpt2d serve replicas, want at least 2", len(replicas))
	}

	pg := c.services["postgres"]
	if pg == nil || !strings.HasPrefix(getStr(pg.raw, "image"), "postgres:15") {
		t.Fatalf("compose: want a postgres service on image postgres:15")
	}
	if getMap(pg.raw, "healthcheck") == nil {
		t.Error("compose postgres: no healthcheck, so nothing can wait for it")
	}
	nginx := c.services["nginx"]
	if nginx == nil {
		t.Fatal("compose: no nginx service")
	}
	nginxIP := nginx.ipv4(t)
	if !nginxIP.IsValid() {
		t.Fatal("compose nginx: no fixed ipv4_address, so the replicas cannot trust it alone")
	}
	subnet, dynamic := composeSubnet(t, c)
	conf := readNginxConf(t)

	// Every service with GPT2D_STORE reaches the postgres service as its
	// user and database, with the password from a PGPASSFILE secret.
	for _, s := range c.services {
		dsn, ok := s.env["GPT2D_STORE"]
		if !ok {
			continue
		}
		u, err := url.Parse(dsn)
		if err != nil || u.Scheme != "postgres" {
			t.Errorf("compose %s: GPT2D_STORE %q is not a postgres:// URL", s.name, dsn)
			continue
		}
		if u.Hostname() != "postgres" || u.Port() != "5432" || u.User.Username() != pg.env["POSTGRES_USER"] ||
			strings.TrimPrefix(u.Path, "/") != pg.env["POSTGRES_DB"] {
			t.Errorf("compose %s: GPT2D_STORE %q does not name the postgres service's user and database (%s, %s)",
				s.name, dsn, pg.env["POSTGRES_USER"], pg.env["POSTGRES_DB"])
		}
		if _, set := u.User.Password(); set {
			t.Errorf("compose %s: GPT2D_STORE holds the password; give it through PGPASSFILE", s.name)
		}
		c.checkSecretFile(t, s, s.env["PGPASSFILE"])
	}
	c.checkSecretFile(t, pg, pg.env["POSTGRES_PASSWORD_FILE"])

	var upstreams []string
	keyFiles := map[string]bool{}
	for _, r := range replicas {
		where := "compose " + r.name
		checkAddr(t, where, r.env["GPT2D_ADDR"], img.expose)
		upstreams = append(upstreams, net.JoinHostPort(r.name, portOf(r.env["GPT2D_ADDR"])))
		if _, ok := r.env["GPT2D_STORE"]; !ok {
			t.Errorf("%s: no GPT2D_STORE: each replica would have its own bbolt file", where)
		}
		ip := r.ipv4(t)
		if !ip.IsValid() || !subnet.Contains(ip) || dynamic.Contains(ip) {
			t.Errorf("%s: address %v: want a fixed one in %v outside the dynamic range %v", where, ip, subnet, dynamic)
		}

		// Proxy headers: believed from nginx only, the header nginx sets.
		trusted := parsePrefixes(t, where, r.env["GPT2D_TRUSTED_PROXIES"])
		if !containsAddr(trusted, nginxIP) {
			t.Errorf("%s: GPT2D_TRUSTED_PROXIES %q does not hold nginx's address %v", where, r.env["GPT2D_TRUSTED_PROXIES"], nginxIP)
		}
		for _, o := range c.services {
			if oip := o.ipv4(t); o != nginx && oip.IsValid() && containsAddr(trusted, oip) {
				t.Errorf("%s: GPT2D_TRUSTED_PROXIES also trusts %s (%v), which is no proxy", where, o.name, oip)
			}
		}
		if dynamic.IsValid() && containsAddr(trusted, dynamic.Addr()) {
			t.Errorf("%s: GPT2D_TRUSTED_PROXIES trusts the dynamic range %v", where, dynamic)
		}
		checkProxyHeader(t, where, conf, r.env["GPT2D_PROXY_HEADER"])

		// The model, read-only, where weights-convert writes it.
		model := r.env["GPT2D_MODEL"]
		m, rel, ok := r.mountOf(model)
		if !ok || !m.readOnly {
			t.Errorf("%s: GPT2D_MODEL %s is not on a read-only volume", where, model)
		} else if wc := c.services["weights-convert"]; wc == nil {
			t.Errorf("compose: no weights-convert service writes the model")
		} else {
			out := flagValue(wc.command, "--out")
			wm, wrel, ok := wc.mountOf(out)
			if !ok || wm.source != m.source || wrel != rel || wm.readOnly {
				t.Errorf("%s: GPT2D_MODEL %s (volume %s) is not where weights-convert writes %s", where, model, m.source, out)
			}
		}

		// One signing key file for all, on a volume they share.
		kf := r.env["GPT2D_JWT_SECRET_FILE"]
		km, _, ok := r.mountOf(kf)
		if !ok || km.readOnly || strings.HasPrefix(km.source, ".") {
			t.Errorf("%s: GPT2D_JWT_SECRET_FILE %q is not on a writable named volume the replicas share", where, kf)
		}
		keyFiles[km.source+":"+kf] = true

		hc := strList(getList(r.raw, "healthcheck", "test"))
		if len(hc) < 3 || hc[0] != "CMD" || hc[1] != img.entrypoint[0] {
			t.Errorf("%s: healthcheck %q: want [CMD, %s, healthcheck, ...]", where, hc, img.entrypoint[0])
		} else if sub := checkInvocation(t, where+" healthcheck", hc[2:], nil); sub != nil && !slices.Equal(sub, []string{"healthcheck"}) {
			t.Errorf("%s: healthcheck runs gpt2d %v, want gpt2d healthcheck", where, sub)
		} else if u := flagValue(hc, "--url"); u != "" {
			if pu, err := url.Parse(u); err != nil || pu.Port() != portOf(r.env["GPT2D_ADDR"]) {
				t.Errorf("%s: healthcheck --url %q is not the replica's port", where, u)
			}
		}
		if getStr(r.raw, "depends_on", "migrate", "condition") != "service_completed_successfully" {
			t.Errorf("%s: does not wait for the migrate service to complete", where)
		}
	}
	if len(keyFiles) != 1 {
		t.Errorf("compose: the replicas use %d different signing key files, want one: %v", len(keyFiles), sortedKeys(keyFiles))
	}
	slices.Sort(upstreams)
	if got := conf.upstreamServers(); !slices.Equal(got, upstreams) {
		t.Errorf("nginx.conf: upstream servers %q, want the compose replicas %q", got, upstreams)
	}
	if _, err := os.Stat(nginxConfFile); err != nil || nginx.mounts["/etc/nginx/nginx.conf"].source != "./"+filepath.Base(nginxConfFile) || !nginx.mounts["/etc/nginx/nginx.conf"].readOnly {
		t.Errorf("compose nginx: nginx.conf is not mounted read-only at /etc/nginx/nginx.conf")
	}
	for _, p := range conf.directiveArgs("ssl_certificate", "ssl_certificate_key") {
		if m, _, ok := nginx.mountOf(p); !ok || !m.readOnly {
			t.Errorf("compose nginx: %s is not on a read-only mount", p)
		}
	}
	if wf, wc := c.services["weights-fetch"], c.services["weights-convert"]; wf != nil && wc != nil {
		dir, from := flagValue(wf.command, "--dir"), flagValue(wc.command, "--from")
		fm, frel, _ := wf.mountOf(dir)
		cm, crel, _ := wc.mountOf(from)
		if dir == "" || fm.source != cm.source || frel != crel {
			t.Errorf("compose: weights-fetch writes %s (volume %s), weights-convert reads %s (volume %s)", dir, fm.source, from, cm.source)
		}
	}
	if mg := c.services["migrate"]; mg == nil || !slices.Equal(mg.command, []string{"store", "migrate"}) {
		t.Error("compose: no migrate service running gpt2d store migrate")
	}
}

// checkSecretFile checks that path is a Compose secret of s, declared
// with a file in the directory's .gitignore.
func (c composeFile) checkSecretFile(t *testing.T, s *composeService, path string) {
	t.Helper()
	name, ok := strings.CutPrefix(path, "/run/secrets/")
	if !ok || !slices.Contains(strList(get(s.raw, "secrets")), name) {
		t.Errorf("compose %s: %q is not one of its secrets (/run/secrets/NAME)", s.name, path)
		return
	}
	file := getStr(c.secrets[name], "file")
	if file == "" {
		t.Errorf("compose: secret %s is not declared with a file", name)
		return
	}
	ignore, _ := os.ReadFile(filepath.Join(composeDir, ".gitignore"))
	dir, _, _ := strings.Cut(strings.TrimPrefix(file, "./"), "/")
	if !slices.Contains(strings.Fields(string(ignore)), dir+"/") {
		t.Errorf("compose: secret file %s is not in a directory compose/.gitignore keeps out of git", file)
	}
}

// composeSubnet returns the subnet of the network with fixed addresses and
// the range Docker gives addresses from dynamically.
func composeSubnet(t *testing.T, c composeFile) (subnet, dynamic netip.Prefix) {
	t.Helper()
	for name, n := range c.networks {
		cfg := get(n, "ipam", "config", "0")
		if cfg == nil {
			continue
		}
		var err error
		if subnet, err = netip.ParsePrefix(getStr(cfg, "subnet")); err != nil {
			t.Fatalf("compose network %s: subnet: %v", name, err)
		}
		if r := getStr(cfg, "ip_range"); r != "" {
			if dynamic, err = netip.ParsePrefix(r); err != nil {
				t.Fatalf("compose network %s: ip_range: %v", name, err)
			}
		}
		return subnet, dynamic
	}
	t.Fatal("compose: no network with a fixed subnet")
	return
}

func parsePrefixes(t *testing.T, where, list string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range strings.Split(list, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				t.Errorf("%s: trusted proxy %q is neither an address nor a prefix", where, s)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p)
	}
	return out
}

func containsAddr(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// flagValue returns the value after flag in args ("" if absent).
func flagValue(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v
		}
	}
	return ""
}

// portOf returns the port of a host:port listen address.
func portOf(addr string) string {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return ""
	}
	if _, err := strconv.Atoi(addr[i+1:]); err != nil {
		return ""
	}
	return addr[i+1:]
}

// checkProxyHeader checks that nginx sets header to the client's address,
// overwriting it ($remote_addr) or appending to it
// ($proxy_add_x_forwarded_for), in every location that proxies.
func checkProxyHeader(t *testing.T, where string, conf nginxConf, header string) {
	t.Helper()
	if header == "" {
		t.Errorf("%s: no GPT2D_PROXY_HEADER: behind nginx every client would be nginx's address", where)
		return
	}
	set := conf.proxySetHeader(header)
	if len(set) == 0 {
		t.Errorf("%s: GPT2D_PROXY_HEADER %s, but nginx.conf never sets it: a client's own value would pass", where, header)
	}
	for _, v := range set {
		if v != "$remote_addr" && v != "$proxy_add_x_forwarded_for" {
			t.Errorf("%s: nginx sets %s to %q: want $remote_addr (overwrite) or $proxy_add_x_forwarded_for (append)", where, header, v)
		}
	}
}
