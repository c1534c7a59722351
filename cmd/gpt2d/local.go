package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"gpt2d/auth"
	"gpt2d/store"
)

// The local account socket lets `gpt2d users` work while `gpt2d serve`
// holds the store's file lock: serve listens on a unix socket beside the
// store (DATA.sock, mode 0600) and creates and lists accounts for whoever
// can connect to it. Connecting needs the same filesystem rights as
// opening the store file itself (0600, same owner), so those rights are
// the authentication, as with PostgreSQL's peer authentication. This is
// how the first admin is made without a restart and without a credential
// crossing the network.

// maxSocketPath is the longest unix socket path Linux accepts (sun_path
// is 108 bytes with the terminating NUL).
const maxSocketPath = 107

// socketPath is the local account socket of the store at data.
func socketPath(data string) string { return data + ".sock" }

// localUser is a user as the local socket reports it.
type localUser struct {
	ID        uint64     `json:"id"`
	Username  string     `json:"username"`
	Role      store.Role `json:"role"`
	Disabled  bool       `json:"disabled"`
	CreatedAt time.Time  `json:"created_at"`
}

// localCreate is the body of POST /users on the local socket.
type localCreate struct {
	Username string     `json:"username"`
	Password string     `json:"password"`
	Role     store.Role `json:"role"`
}

// serveLocal listens on the store's local account socket until ctx ends.
// A socket file left by a crashed server is replaced: this process holds
// the store's lock, so no other server can be using it.
func serveLocal(ctx context.Context, data string, svc *auth.Service, db store.Store, log *slog.Logger) (stop func(), err error) {
	path := socketPath(data)
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("local account socket %s: path longer than %d bytes", path, maxSocketPath)
	}
	if st, err := os.Lstat(path); err == nil && st.Mode()&os.ModeSocket != 0 {
		os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("local account socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("local account socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /users", func(w http.ResponseWriter, r *http.Request) {
		var req localCreate
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
			localError(w, http.StatusBadRequest, "body: "+err.Error())
			return
		}
		u, err := createAccount(svc, db, req.Username, req.Password, req.Role, "local socket")
		if err != nil {
			code := http.StatusUnprocessableEntity
			if errors.Is(err, store.ErrUsernameTaken) {
				code = http.StatusConflict
			}
			localError(w, code, err.Error())
			return
		}
		log.Info("audit", "action", "user.register", "actor", "local socket", "target", u.Username, "user_id", u.ID, "role", u.Role)
		w.WriteHeader(http.StatusCreated)
		json.NewEncoder(w).Encode(toLocalUser(u))
	})
	mux.HandleFunc("GET /users", func(w http.ResponseWriter, r *http.Request) {
		users, err := db.ListUsers(0, 1<<31-1)
		if err != nil {
			localError(w, http.StatusInternalServerError, err.Error())
			return
		}
		out := make([]localUser, len(users))
		for i, u := range users {
			out[i] = toLocalUser(&u)
		}
		json.NewEncoder(w).Encode(out)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		os.Remove(path)
	}, nil
}

func toLocalUser(u *store.User) localUser {
	return localUser{ID: u.ID, Username: u.Username, Role: u.Role, Disabled: u.Disabled, CreatedAt: u.CreatedAt}
}

func localError(w http.ResponseWriter, code int, msg string) {
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

// createAccount checks and registers an account, and audits it as done
// by actor.
func createAccount(svc *auth.Service, db store.Store, username, password string, role store.Role, actor string) (*store.User, error) {
	if n := len([]rune(username)); n < 3 || n > 50 {
		return nil, errors.New("the username must have 3 to 50 characters")
	}
	if !role.Valid() {
		return nil, fmt.Errorf("role %q: want user or admin", role)
	}
	if err := svc.Policy().Check(password); err != nil {
		return nil, err
	}
	u, err := svc.Register(username, password, role)
	if err != nil {
		return nil, err
	}
	db.AppendAudit(&store.Event{Time: time.Now().UTC(), Action: "user.register", Actor: actor, Target: u.Username,
		Detail: map[string]any{"user_id": u.ID, "role": u.Role}})
	return u, nil
}

// localClient talks to a running server's local account socket.
type localClient struct{ http.Client }

// errNoLocalServer reports that no server answers on the local socket.
var errNoLocalServer = errors.New("no server on the local account socket")

func newLocalClient(data string) *localClient {
	path := socketPath(data)
	return &localClient{http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}}
}

// do sends a request and decodes a 2xx answer into out.
func (c *localClient) do(method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, "http://gpt2d"+path, r)
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", errNoLocalServer, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		var e struct{ Error string }
		json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&e)
		return errors.New(e.Error)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// askFirstAdmin creates the first admin from answers typed on the
// terminal in and out, if both are terminals and the store has no admin.
// An empty name skips it. It returns whether an admin exists afterwards.
// Ctrl-C (ctx ending) interrupts the prompt and restores the terminal.
func askFirstAdmin(ctx context.Context, svc *auth.Service, db store.Store, in io.Reader, out io.Writer) (bool, error) {
	has, err := db.HasAdmin()
	if err != nil || has {
		return has, err
	}
	f, ok := in.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) || !isTerminal(out) {
		return false, nil
	}
	state, err := term.GetState(int(f.Fd()))
	if err != nil {
		return false, nil
	}
	type answer struct {
		u   *store.User
		err error
	}
	done := make(chan answer, 1)
	go func() {
		fmt.Fprint(out, "There is no admin account yet. Name of the first admin (Enter to skip): ")
		line, err := bufio.NewReader(f).ReadString('\n')
		name := strings.TrimSpace(line)
		if err != nil || name == "" {
			done <- answer{}
			return
		}
		for {
			password, err := readPassword(f, out)
			if err != nil {
				done <- answer{err: err}
				return
			}
			u, err := createAccount(svc, db, name, password, store.RoleAdmin, "serve prompt")
			var pe *auth.PolicyError
			if errors.As(err, &pe) {
				fmt.Fprintf(out, "%v; try again.\n", err)
				continue
			}
			done <- answer{u, err}
			return
		}
	}()
	select {
	case a := <-done:
		if a.err != nil {
			return false, fmt.Errorf("first admin: %w", a.err)
		}
		if a.u != nil {
			fmt.Fprintf(out, "created admin %q\n", a.u.Username)
		}
		return a.u != nil, nil
	case <-ctx.Done():
		term.Restore(int(f.Fd()), state)
		fmt.Fprintln(out)
		return false, errInterrupted
	}
}

// firstAdmin makes sure an operator can get admin rights without a
// restart: when the store has no admin, it asks for one on a terminal
// (askFirstAdmin), and otherwise logs the command that makes one while
// the server runs.
func firstAdmin(ctx context.Context, svc *auth.Service, db store.Store, cfg Config, stdin io.Reader, stderr io.Writer, log *slog.Logger) error {
	has, err := askFirstAdmin(ctx, svc, db, stdin, stderr)
	if err != nil || has {
		return err
	}
	// The binary as it was invoked (bin/gpt2d under make run, /gpt2d in
	// the container), so the command can be pasted as it is.
	self := "gpt2d"
	if len(os.Args) > 0 && strings.Contains(os.Args[0], "gpt2d") {
		self = os.Args[0]
	}
	log.Warn("no admin account yet; make one now, while the server runs, with: "+self+" users create --data "+cfg.Data+" --username NAME --role admin",
		"data", cfg.Data)
	return nil
}

// installLocalKey installs the local API key (--api-key-file or
// GPT2D_API_KEY), if one is set, as a key of the bootstrap admin: the
// account GPT2D_ADMIN_USERNAME names, else the store's first admin, else
// an admin "admin" made for it with a random password nobody knows (the
// key is its credential; `gpt2d users create` makes admins who sign in).
func installLocalKey(svc *auth.Service, db store.Store, cfg Config, log *slog.Logger) error {
	key, err := cfg.apiKey()
	if err != nil || key == "" {
		return err
	}
	owner, err := localKeyOwner(svc, db, cfg, log)
	if err != nil {
		return fmt.Errorf("local API key: %w", err)
	}
	if err := svc.InstallLocalKey(owner, key); err != nil {
		return fmt.Errorf("local API key (--api-key-file, GPT2D_API_KEY): %w", err)
	}
	log.Info("local API key installed", "owner", owner.Username, "scopes", "admin,generate")
	return nil
}

func localKeyOwner(svc *auth.Service, db store.Store, cfg Config, log *slog.Logger) (*store.User, error) {
	if cfg.AdminUsername != "" {
		return db.UserByUsername(cfg.AdminUsername)
	}
	const page = 1000
	for skip := 0; ; skip += page {
		users, err := db.ListUsers(skip, page)
		if err != nil {
			return nil, err
		}
		for i := range users {
			if users[i].Role == store.RoleAdmin && !users[i].Disabled {
				return &users[i], nil
			}
		}
		if len(users) < page {
			break
		}
	}
	var b [32]byte
	rand.Read(b[:])
	u, err := createAccount(svc, db, "admin", base64.RawURLEncoding.EncodeToString(b[:]), store.RoleAdmin, "local API key")
	if err != nil {
		return nil, fmt.Errorf("make an admin to own it: %w", err)
	}
	log.Info("audit", "action", "user.register", "actor", "local API key", "target", u.Username, "user_id", u.ID, "role", u.Role)
	return u, nil
}
