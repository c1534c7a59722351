// Package pgtest runs throwaway PostgreSQL clusters for tests: initdb into
// a temporary directory and pg_ctl start on a free loopback port, as an
// unprivileged user (PostgreSQL refuses to run as root, and CI runs as
// root: the cluster then runs as the "postgres" system user).
//
// A test binary shares one cluster, started on first use: its TestMain
// calls Main, which stops the cluster when the tests are done. Each test
// gets a fresh database (NewDatabase). Where PostgreSQL cannot be started
// the test fails with the reason when CI=true, and is skipped with the
// reason otherwise.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is one running PostgreSQL server with its own data directory.
type Cluster struct {
	attached bool // another process's cluster (EnvCluster): never stopped here

	dir  string // owns data/, the log and the socket
	bin  string // directory of initdb, pg_ctl, postgres
	port int
	cred *syscall.Credential // nil: run as the current user
	next atomic.Int64        // database name counter
}

// shared is the cluster of this test binary: TestMain-scoped state, made
// once on first use and stopped by Main.
var shared struct {
	once sync.Once
	c    *Cluster
	err  error
}

// EnvCluster is the environment variable through which a test binary that
// re-executes itself hands its shared cluster (Cluster.Env) to the child,
// which then uses it instead of starting another.
const EnvCluster = "GPT2D_PGTEST_CLUSTER"

// Main runs the tests of m and then stops the shared cluster, if a test
// started one. Use it as TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if shared.c != nil {
		shared.c.Stop()
	}
	return code
}

// Unavailable ends the test when PostgreSQL cannot be used: a failure with
// the reason under CI (CI=true), where PostgreSQL is installed by
// .ci/run, and a skip with the reason elsewhere.
func Unavailable(t testing.TB, err error) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("PostgreSQL is required in CI and could not be started: %v", err)
	}
	t.Skipf("PostgreSQL not available, test skipped: %v", err)
}

// Shared returns the test binary's cluster, starting it on first use, or
// ends the test through Unavailable.
func Shared(t testing.TB) *Cluster {
	t.Helper()
	shared.once.Do(func() {
		if v := os.Getenv(EnvCluster); v != "" {
			port, err := strconv.Atoi(v)
			shared.c, shared.err = &Cluster{attached: true, port: port}, err
			return
		}
		shared.c, shared.err = Start()
	})
	if shared.err != nil {
		Unavailable(t, shared.err)
	}
	return shared.c
}

// NewDatabase creates an empty database in the shared cluster for t, drops
// it when t ends, and returns its connection URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return Shared(t).NewDatabase(t)
}

// Start initialises and starts a new cluster. Stop it with Stop.
func Start() (*Cluster, error) {
	bin, err := findBin()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, and PostgreSQL refuses root: no unprivileged user %q to run it as: %w", "postgres", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if c.dir, err = os.MkdirTemp("", "gpt2d-pgtest-"); err != nil {
		return nil, err
	}
	if c.cred != nil {
		if err := os.Chown(c.dir, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			os.RemoveAll(c.dir)
			return nil, err
		}
	}
	if out, err := c.run("initdb", "-D", c.data(), "-U", "postgres", "--auth=trust", "--no-locale", "-E", "UTF8", "--no-sync"); err != nil {
		os.RemoveAll(c.dir)
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	// A free port can be taken by someone else between choosing and
	// binding it: try a few.
	for attempt := 0; ; attempt++ {
		if c.port, err = freePort(); err == nil {
			err = c.start()
		}
		if err == nil || attempt == 4 {
			break
		}
	}
	if err != nil {
		os.RemoveAll(c.dir)
		return nil, err
	}
	return c, nil
}

// start runs pg_ctl start and waits until the server accepts connections.
// The settings trade durability for speed: a test cluster never outlives
// its tests.
func (c *Cluster) start() error {
	opts := strings.Join([]string{
		"-c listen_addresses=127.0.0.1",
		"-p " + strconv.Itoa(c.port),
		"-k " + c.dir,
		"-c fsync=off",
		"-c full_page_writes=off",
		"-c max_connections=400",
		"-c shared_buffers=32MB",
	}, " ")
	out, err := c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "log"), "-w", "-t", "60", "-o", opts, "start")
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		return fmt.Errorf("pg_ctl start: %w: %s\n%s", err, out, tail(log, 2000))
	}
	return nil
}

// Env returns the EnvCluster setting that lets a child test process use
// this cluster.
func (c *Cluster) Env() string { return EnvCluster + "=" + strconv.Itoa(c.port) }

// Stop stops the server at once and removes its directory.
func (c *Cluster) Stop() {
	if c.attached {
		return
	}
	c.Kill()
	os.RemoveAll(c.dir)
}

// Kill stops the server at once ("immediate" mode: connections are cut
// without a clean shutdown), keeping its data; Restart brings it back.
func (c *Cluster) Kill() {
	c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "stop")
}

// Restart starts a killed server again on the same port.
func (c *Cluster) Restart() error { return c.start() }

// URL returns the connection URL of database name.
func (c *Cluster) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, name)
}

// NewDatabase creates an empty database for t, drops it when t ends
// (closing any connection left to it), and returns its URL.
func (c *Cluster) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), c.next.Add(1))
	if err := c.admin(fmt.Sprintf("CREATE DATABASE %s", name)); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		if err := c.admin(fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	return c.URL(name)
}

func (c *Cluster) admin(sql string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// run runs one of the cluster's programs as the cluster's user.
func (c *Cluster) run(prog string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(c.bin, prog), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "LANG=C")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// findBin returns the directory holding initdb and pg_ctl: $GPT2D_PG_BIN,
// else the newest /usr/lib/postgresql/N/bin (Debian's layout), else the
// directory of initdb on $PATH.
func findBin() (string, error) {
	if d := os.Getenv("GPT2D_PG_BIN"); d != "" {
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no initdb in /usr/lib/postgresql/*/bin or on PATH (apt-get install postgresql)")
}

func version(dir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return n
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
