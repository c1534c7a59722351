package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"gpt2d/store/pgtest"
)

// nginxBin returns the nginx binary, or ends the test: a failure with the
// reason under CI (CI=true), where .ci/run installs nginx, and a visible
// skip elsewhere.
func nginxBin(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	const why = "nginx not found on PATH or in /usr/sbin (apt-get install nginx): deploy/nginx.conf is not checked"
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
	return ""
}

// nginxRun is deploy/nginx.conf made runnable on this machine.
type nginxRun struct {
	exited     chan struct{} // closed when a started nginx ends
	dir        string        // prefix, logs, temp files, certificate
	conf       string
	http       string // 127.0.0.1:port of `listen 80`
	https      string // 127.0.0.1:port of `listen 443 ssl`
	roots      *x509.CertPool
	accessLog  string
	errorLog   string
	startupLog string
}

// newNginxRun writes a copy of nginx.conf in which only what cannot be the
// same outside Compose differs, each rewrite applied exactly as often as
// expected so that the copy cannot silently drift from the original: the
// upstream servers (Compose service names, which do not resolve here)
// become upstreams[name]; the listen ports become free loopback ports; the
// TLS files become a certificate made here; logs, pid and temporary files
// go to a temporary directory. Everything else — proxy headers, timeouts,
// buffering, limits — is the file as shipped.
func newNginxRun(t *testing.T, upstreams map[string]string) *nginxRun {
	t.Helper()
	dir, err := os.MkdirTemp("", "gpt2d-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// nginx run as root hands requests to unprivileged workers, which must
	// reach their temporary directories.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r := &nginxRun{dir: dir, conf: filepath.Join(dir, "nginx.conf"), http: freeAddr(t), https: freeAddr(t),
		accessLog: filepath.Join(dir, "access.log"), errorLog: filepath.Join(dir, "error.log"),
		startupLog: filepath.Join(dir, "startup.log")}
	r.roots = writeCert(t, filepath.Join(dir, "tls"))

	b, err := os.ReadFile(nginxConfFile)
	if err != nil {
		t.Fatal(err)
	}
	conf := string(b)
	rewrite := func(old, new string, n int) {
		t.Helper()
		if got := strings.Count(conf, old); got != n {
			t.Fatalf("nginx.conf: %q occurs %d times, want %d: update the test's rewrites", old, got, n)
		}
		conf = strings.ReplaceAll(conf, old, new)
	}
	for _, s := range readNginxConf(t).upstreamServers() {
		to, ok := upstreams[s]
		if !ok {
			t.Fatalf("nginx.conf: upstream %s is not one the test runs", s)
		}
		rewrite("server "+s+" ", "server "+to+" ", 1)
	}
	rewrite("listen 80;", "listen "+r.http+";", 1)
	rewrite("listen 443 ssl;", "listen "+r.https+" ssl;", 1)
	rewrite("/etc/nginx/tls/", filepath.Join(dir, "tls")+"/", 2)
	rewrite("access_log /dev/stdout;", "access_log "+r.accessLog+";", 1)
	rewrite("error_log /dev/stderr warn;", "error_log "+r.errorLog+" warn;", 1)
	var temps strings.Builder
	for _, p := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&temps, "\n    %s_temp_path %s;", p, filepath.Join(dir, p))
	}
	rewrite("http {", "http {"+temps.String(), 1)
	if err := os.WriteFile(r.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return r
}

// args are nginx's arguments for this copy, then extra main-context
// directives.
func (r *nginxRun) args(directives string) []string {
	return []string{"-c", r.conf, "-p", r.dir + "/", "-e", r.startupLog,
		"-g", "pid " + filepath.Join(r.dir, "nginx.pid") + ";" + directives}
}

// start runs nginx in the foreground as one process (master_process off:
// no workers to outlive it), in its own process group, stopped with the
// test, and killed by the kernel if the test binary dies first (a
// timeout). Output goes to a file, so no pipe outlives the test either.
// How nginx runs changes nothing the test checks: the configuration is
// the same.
func (r *nginxRun) start(t *testing.T, bin string) {
	t.Helper()
	out, err := os.Create(filepath.Join(r.dir, "output.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, r.args("daemon off; master_process off;")...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatal(err)
	}
	out.Close()
	done := make(chan struct{})
	r.exited = done
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(cmd.Process.Pid, syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
		}
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
}

// logs returns what nginx wrote: its output, start-up and error logs.
func (r *nginxRun) logs() string {
	var b strings.Builder
	for _, f := range []string{"output.log", r.startupLog, r.errorLog} {
		if !filepath.IsAbs(f) {
			f = filepath.Join(r.dir, f)
		}
		c, _ := os.ReadFile(f)
		b.Write(c)
	}
	return b.String()
}

// writeCert writes a self-signed certificate for 127.0.0.1 and localhost
// as dir/tls.crt and dir/tls.key, and returns a pool trusting it.
func writeCert(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gpt2d test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "tls.crt"), crt, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tls.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(crt)
	return pool
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestNginxConfigIsValid runs `nginx -t` on deploy/nginx.conf, rewritten
// only as newNginxRun says (upstream host names, ports, file paths).
func TestNginxConfigIsValid(t *testing.T) {
	bin := nginxBin(t)
	ups := map[string]string{}
	for i, s := range readNginxConf(t).upstreamServers() {
		ups[s] = "127.0.0.1:" + strconv.Itoa(10000+i)
	}
	r := newNginxRun(t, ups)
	out, err := exec.Command(bin, append([]string{"-t"}, r.args("")...)...).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "test is successful") {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
	t.Logf("nginx -t: %s", bytes.TrimSpace(out))
}

// replica is one `gpt2d serve` of the built binary.
type replica struct {
	name   string
	addr   string
	addrCh chan string // the listening address, once logged
	mu     sync.Mutex
	logs   []map[string]any
	raw    bytes.Buffer
}

func (r *replica) lines() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.logs...)
}

// launchReplica starts `gpt2d serve` with env; ready waits until it
// listens and its model is loaded.
func launchReplica(t *testing.T, name string, env []string) *replica {
	t.Helper()
	r := &replica{name: name, addrCh: make(chan string, 1)}
	cmd := exec.Command(gpt2dBin, "serve")
	cmd.Env = env
	// Killed by the kernel if the test binary dies without cleaning up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m map[string]any
			r.mu.Lock()
			r.raw.WriteString(sc.Text() + "\n")
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				r.logs = append(r.logs, m)
				if m["msg"] == "listening" {
					r.addrCh <- fmt.Sprint(m["addr"])
				}
			}
			r.mu.Unlock()
		}
		close(r.addrCh)
	}()
	return r
}

func (r *replica) ready(t *testing.T) {
	t.Helper()
	select {
	case a, ok := <-r.addrCh:
		if !ok {
			t.Fatalf("%s exited:\n%s", r.name, r.rawLog())
		}
		r.addr = a
	case <-time.After(time.Minute):
		t.Fatalf("%s did not listen within a minute:\n%s", r.name, r.rawLog())
	}
	waitFor(t, r.name+" /health 200", func() bool {
		resp, err := http.Get("http://" + r.addr + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, r.rawLog)
}

func (r *replica) rawLog() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.raw.String()
}

// waitFor polls cond for up to a minute: a generous bound for a shared
// machine, never a measure of speed.
func waitFor(t *testing.T, what string, cond func() bool, logs func() string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within a minute\n%s", what, logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestNginxGivesTheReplicasTheClientAddress runs the deployment of
// compose.yaml on loopback: its migrate step and two replicas of the built
// binary with the replicas' own environment (only addresses and paths
// replaced) on one PostgreSQL, behind nginx with deploy/nginx.conf. A
// client on 127.0.0.2 that writes its own X-Forwarded-For is seen by both
// replicas — request log and audit trail — as 127.0.0.2, never as the
// addresses it wrote; a token issued by one replica works on the other
// (one signing key file, created by whichever started first).
func TestNginxGivesTheReplicasTheClientAddress(t *testing.T) {
	nginx := nginxBin(t)
	dsn := pgtest.NewDatabase(t)
	c := readCompose(t, nil)
	dir := t.TempDir()
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}

	// The password file, in the format compose.yaml's header makes it (the
	// test cluster trusts loopback, so the password is not checked).
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	pgpass := filepath.Join(dir, "pgpass")
	line := fmt.Sprintf("%s:%s:%s:%s:unused\n", u.Hostname(), u.Port(), strings.TrimPrefix(u.Path, "/"), u.User.Username())
	if err := os.WriteFile(pgpass, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	// environ is a service's Compose environment with over applied; every
	// key of over must be one the service sets.
	environ := func(name string, over map[string]string) []string {
		t.Helper()
		s := c.services[name]
		if s == nil {
			t.Fatalf("compose.yaml: no service %s", name)
		}
		env := append([]string(nil), base...)
		for k, v := range s.env {
			if o, ok := over[k]; ok {
				v = o
			}
			env = append(env, k+"="+v)
		}
		for k := range over {
			if _, ok := s.env[k]; !ok {
				t.Fatalf("compose %s: no %s, which the test overrides", name, k)
			}
		}
		return env
	}

	// The migrate service, then the first admin as deploy/README.md makes it.
	mg := c.services["migrate"]
	run := func(stdin string, args ...string) {
		t.Helper()
		cmd := exec.Command(gpt2dBin, args...)
		cmd.Env = environ("migrate", map[string]string{"GPT2D_STORE": dsn, "PGPASSFILE": pgpass})
		cmd.Stdin = strings.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gpt2d %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("", mg.command...)
	const adminPassword = "nginx-test-Quartz-47-Violet"
	run(adminPassword+"\n", "users", "create", "--username", "admin", "--role", "admin")

	// Two replicas with the Compose environment. Overridden: where the
	// store, model and key file are here, the listen address, and the
	// trusted proxy — nginx here connects from 127.0.0.1, not from its
	// Compose address (TestComposeMatchesTheBinary checks that one).
	keyFile := filepath.Join(dir, "keys", "jwt-key")
	over := map[string]string{
		"GPT2D_STORE": dsn, "GPT2D_ADDR": "127.0.0.1:0", "GPT2D_MODEL": "../testdata/gpt2-tiny",
		"GPT2D_JWT_SECRET_FILE": keyFile, "GPT2D_TRUSTED_PROXIES": "127.0.0.1", "GPT2D_THREADS": "1",
		"PGPASSFILE": pgpass,
	}
	names := []string{"gpt2d-1", "gpt2d-2"}
	var replicas []*replica
	for _, name := range names {
		// Both at once, as `docker compose up` starts them: they race to
		// create the one key file.
		replicas = append(replicas, launchReplica(t, name, environ(name, over)))
	}
	for _, r := range replicas {
		r.ready(t)
	}

	ups := map[string]string{}
	for i, name := range names {
		ups[name+":"+portOf(c.services[name].env["GPT2D_ADDR"])] = replicas[i].addr
	}
	ng := newNginxRun(t, ups)
	ng.start(t, nginx)
	nginxLogs := ng.logs

	// The client: 127.0.0.2, a loopback address that is not nginx's.
	const clientIP = "127.0.0.2"
	client := &http.Client{
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: ng.roots},
			DialContext:     (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(clientIP)}}).DialContext,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	waitFor(t, "nginx serving", func() bool {
		select {
		case <-ng.exited:
			t.Fatalf("nginx exited:\n%s", nginxLogs())
		default:
		}
		resp, err := client.Get("https://" + ng.https + "/health")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, nginxLogs)

	spoofed := []string{"203.0.113.7", "198.51.100.9", "192.0.2.1"}
	do := func(method, path, token, xff string, form url.Values) (int, []byte) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, _ := http.NewRequestWithContext(context.Background(), method, "https://"+ng.https+path, body)
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s through nginx: %v\n%s", method, path, err, nginxLogs())
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}

	// A wrong password, then the right one, each with a forged header.
	if st, b := do("POST", "/token", "", spoofed[0], url.Values{"username": {"admin"}, "password": {"wrong-" + adminPassword}}); st != http.StatusUnauthorized {
		t.Fatalf("wrong password through nginx: %d %s", st, b)
	}
	st, b := do("POST", "/token", "", spoofed[1]+", "+spoofed[2], url.Values{"username": {"admin"}, "password": {adminPassword}})
	if st != http.StatusOK {
		t.Fatalf("login through nginx: %d %s", st, b)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("login through nginx: %s", b)
	}

	// The token works on whichever replica nginx picks; both get some.
	served := func(r *replica) int {
		n := 0
		for _, l := range r.lines() {
			if l["msg"] == "request" && l["path"] == "/users/me" {
				n++
			}
		}
		return n
	}
	for i := 0; i < 10 && (served(replicas[0]) == 0 || served(replicas[1]) == 0); i++ {
		if st, b := do("GET", "/users/me", tok.AccessToken, spoofed[i%3], nil); st != http.StatusOK {
			t.Fatalf("GET /users/me through nginx (request %d): %d %s", i, st, b)
		}
		time.Sleep(10 * time.Millisecond) // let the log line land before counting
	}
	if served(replicas[0]) == 0 || served(replicas[1]) == 0 {
		t.Errorf("nginx sent /users/me to one replica only: %d and %d of 10", served(replicas[0]), served(replicas[1]))
	}

	// The audit trail (shared, in PostgreSQL) names the client's address.
	st, b = do("GET", "/admin/audit?limit=50", tok.AccessToken, "", nil)
	if st != http.StatusOK {
		t.Fatalf("GET /admin/audit: %d %s", st, b)
	}
	var events []struct {
		Action, IP string
	}
	if err := json.Unmarshal(b, &events); err != nil {
		t.Fatalf("audit: %v: %s", err, b)
	}
	seen := map[string]string{}
	for _, e := range events {
		if e.Action == "login.failure" || e.Action == "login.success" {
			seen[e.Action] = e.IP
		}
	}
	for _, a := range []string{"login.failure", "login.success"} {
		if seen[a] != clientIP {
			t.Errorf("audit %s from address %q, want the client's %s (events: %+v)", a, seen[a], clientIP, events)
		}
	}

	// Every request nginx passed on is logged with the client's address;
	// the forged ones appear nowhere.
	through := 0
	for _, r := range replicas {
		for _, l := range r.lines() {
			if l["msg"] != "request" || l["path"] == "/health" && l["ip"] == "127.0.0.1" {
				continue // the test's own direct health checks
			}
			through++
			if l["ip"] != clientIP {
				t.Errorf("%s logged %v %v from %v, want %s", r.name, l["method"], l["path"], l["ip"], clientIP)
			}
		}
		for _, s := range spoofed {
			if strings.Contains(r.rawLog(), s) {
				t.Errorf("%s's log holds the forged address %s", r.name, s)
			}
		}
	}
	if through < 4 {
		t.Errorf("only %d requests through nginx in the replicas' logs", through)
	}

	// A client's X-Request-ID reaches the replica and comes back; without
	// one, nginx makes one, which the replica returns as well.
	for _, sent := range []string{"deploy-test-7f3a", ""} {
		req, _ := http.NewRequest("GET", "https://"+ng.https+"/health", nil)
		if sent != "" {
			req.Header.Set("X-Request-ID", sent)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got := resp.Header.Get("X-Request-ID")
		if (sent != "" && got != sent) || (sent == "" && len(got) != 32) {
			t.Errorf("X-Request-ID sent %q, answered %q", sent, got)
		}
	}

	// Plain HTTP is sent to HTTPS.
	resp, err := client.Get("http://" + ng.http + "/health")
	if err != nil {
		t.Fatalf("plain HTTP: %v", err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || !strings.HasPrefix(loc, "https://") {
		t.Errorf("plain HTTP: %d Location %q, want 301 to https", resp.StatusCode, loc)
	}
}
