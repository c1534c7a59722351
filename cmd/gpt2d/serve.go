package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"time"

	"gpt2d/api"
	"gpt2d/auth"
	"gpt2d/gpt2"
	"gpt2d/store"
)

// runServe implements `gpt2d serve`: open the store, start serving (with
// /health at 503), load the model, then serve until ctx ends (SIGTERM or
// SIGINT). Shutdown stops accepting connections, lets in-flight requests
// — generations included — finish within --shutdown-timeout, stops the
// engine, and closes the store last.
func runServe(ctx context.Context, args []string, stdin io.Reader, stderr io.Writer) error {
	var cfg Config
	b := newBinder("serve", os.Getenv, stderr)
	cfg.bindStore(b)
	cfg.bindAuth(b)
	cfg.bindServe(b)
	if err := b.parse(args); err != nil {
		return err
	}
	if err := cfg.validate(); err != nil {
		return err
	}
	log, err := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	if err != nil {
		return err
	}

	db, err := openStore(ctx, cfg.Data, log)
	if err != nil {
		return err
	}
	defer db.Close() // last: after the server and the engine have stopped
	svc, counters, err := startAuth(db, cfg, log)
	if err != nil {
		return err
	}
	if err := bootstrapAdmin(svc, db, cfg, log); err != nil {
		return err
	}
	if err := installLocalKey(svc, db, cfg, log); err != nil {
		return err
	}
	if db.Kind() == "bbolt" { // PostgreSQL: gpt2d users opens the shared database itself
		if stopLocal, err := serveLocal(ctx, cfg.Data, svc, db, log); err != nil {
			log.Warn("gpt2d users will not work while the server runs", "err", err)
		} else {
			defer stopLocal()
		}
	}
	if err := firstAdmin(ctx, svc, db, cfg, stdin, stderr, log); err != nil {
		return err
	}
	acfg, err := apiConfig(cfg, db, svc, counters, log)
	if err != nil {
		return err
	}
	srv, err := api.New(acfg)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "store", db.Kind(), "registration", cfg.Registration)
	if err := warnIfExposed(ln.Addr(), cfg, db, log); err != nil {
		return err
	}

	return serveModel(ctx, cfg, srv, served, stderr, log)
}

// startAuth makes the auth service over db: the signing key (from
// --jwt-secret, the key file, or the store), bcrypt and token settings,
// and the throttles' counters (shared through PostgreSQL; nil when they
// live in this process).
func startAuth(db store.Store, cfg Config, log *slog.Logger) (*auth.Service, store.CounterStore, error) {
	key, err := auth.LoadKey(db, cfg.JWTSecret, cfg.keyFile())
	if err != nil {
		return nil, nil, err
	}
	acfg := auth.Config{BcryptCost: cfg.BcryptCost, TokenTTL: cfg.TokenTTL, RefreshTTL: cfg.RefreshTTL,
		MaxRefreshFamilies: cfg.MaxSessions, RefreshPerMinute: cfg.RefreshRate}
	counters := sharedCounters(db) // nil: in-process (one bbolt process)
	acfg.Throttle.Store = counters
	if cfg.JWTSecret == "" {
		acfg.KeyFile = cfg.keyFile() // follow `gpt2d keys rotate`
		if acfg.KeyFile == "" {
			log.Warn("the JWT signing key is kept in the PostgreSQL database: its dumps carry it; set --jwt-secret-file to keep it out")
		}
	}
	svc, err := auth.New(db, key, acfg)
	if err != nil {
		return nil, nil, err
	}
	return svc, counters, nil
}

// apiConfig is the API server's configuration from the flags, over db
// and the auth service.
func apiConfig(cfg Config, db store.Store, svc *auth.Service, counters store.CounterStore, log *slog.Logger) (api.Config, error) {
	words, err := blockedWords(cfg.BlockedWords)
	if err != nil {
		return api.Config{}, err
	}
	metricsToken, err := cfg.metricsToken()
	if err != nil {
		return api.Config{}, err
	}
	var chat *api.ChatTemplate // nil: api's default
	if cfg.ChatTemplate != "" {
		if chat, err = api.LoadChatTemplate(cfg.ChatTemplate); err != nil {
			return api.Config{}, err
		}
	}
	return api.Config{
		Counters:           counters,
		RequestRates:       counters,
		Quota:              sharedQuota(db),
		Store:              db,
		Auth:               svc,
		Logger:             log,
		ModelName:          cfg.ModelName,
		RegistrationClosed: cfg.Registration == "closed",
		BlockedWords:       words,
		BodyLimit:          cfg.BodyLimit,
		ReadTimeout:        cfg.ReadTimeout,
		WriteTimeout:       cfg.WriteTimeout,
		IdleTimeout:        cfg.IdleTimeout,
		GenerateTimeout:    cfg.GenerateTimeout,
		SignupBudget:       signupBudget(cfg.SignupsPerHour),
		ProxyHeader:        cfg.ProxyHeader,
		TrustedProxies:     cfg.TrustedProxies,
		Generation:         api.GenerationLimits{MaxNewTokens: cfg.MaxNewTokens, MaxChoices: cfg.MaxChoices},
		UserLimits:         api.Limits{RequestsPerMinute: int64(cfg.UserRPM), TokensPerDay: int64(cfg.UserTokensPerDay)},
		AdminLimits:        api.Limits{RequestsPerMinute: int64(cfg.AdminRPM), TokensPerDay: int64(cfg.AdminTokensPerDay)},
		UsageFlushInterval: cfg.UsageFlush,
		MetricsToken:       metricsToken,
		ChatTemplate:       chat,
		AllowedOrigins:     cfg.AllowedOrigins,
		MaxConnsPerIP:      noCapIfZero(cfg.MaxConnsPerIP),
		HeaderTimeout:      cfg.HeaderTimeout,
		MaxUserSequences:   cfg.UserSequences,
		PrefixCacheScope:   api.PrefixCacheScope(cfg.PrefixCacheScope),
		AuditRetention:     store.AuditRetention{MaxAge: cfg.AuditMaxAge, MaxEvents: cfg.AuditMaxEvents},
	}, nil
}

// serveModel loads the model while srv already answers (/health at 503),
// hands it to srv as the engine, and serves until ctx ends or serving
// fails; then it shuts down within --shutdown-timeout: connections,
// then the engine, then the model's mapping.
func serveModel(ctx context.Context, cfg Config, srv *api.Server, served <-chan error, stderr io.Writer, log *slog.Logger) error {
	type loaded struct {
		m    *gpt2.Model
		took time.Duration
		err  error
	}
	loading := make(chan loaded, 1)
	go func() {
		start := time.Now()
		m, err := loadServeModel(ctx, cfg, stderr, log)
		took := time.Since(start)
		if err == nil {
			log.Info("model loaded", "path", cfg.Model, "name", m.Name, "seconds", took.Seconds())
		}
		loading <- loaded{m, took, err}
	}()

	var model *gpt2.Model
	var engine *gpt2.Engine
	var runErr error
wait:
	for {
		select {
		case l := <-loading:
			if l.err != nil {
				runErr = fmt.Errorf("load model %s: %w", cfg.Model, l.err)
				break wait
			}
			model = l.m
			kvdt, _ := kvDType(cfg.KVDType) // checked by validate
			engine = gpt2.NewEngine(model, gpt2.EngineConfig{Slots: cfg.Slots, QueueSize: cfg.QueueSize,
				KVCacheMB: cfg.KVCacheMB, NoPrefixCache: !cfg.PrefixCache, KVDType: kvdt})
			srv.SetModelLoadTime(l.took)
			srv.SetGenerator(engine)
		case err := <-served:
			runErr = fmt.Errorf("serve: %w", err)
			break wait
		case <-ctx.Done():
			log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
			break wait
		}
	}

	shutdown(cfg.ShutdownTimeout, srv, engine, model, log)
	if runErr == nil {
		log.Info("stopped")
	}
	return runErr
}

// shutdown stops srv, then engine, within timeout in all, then unmaps
// model; engine and model may be nil (not loaded yet).
func shutdown(timeout time.Duration, srv *api.Server, engine *gpt2.Engine, model *gpt2.Model, log *slog.Logger) {
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	if engine != nil {
		if err := engine.Shutdown(sctx); err != nil {
			log.Warn("engine shutdown: generations cancelled", "err", err)
		}
	}
	if model != nil {
		model.Close()
	}
}

// bootstrapAdmin creates the admin named by GPT2D_ADMIN_USERNAME and
// GPT2D_ADMIN_PASSWORD when the store has no admin yet. It never changes
// an existing account.
func bootstrapAdmin(svc *auth.Service, db store.Store, cfg Config, log *slog.Logger) error {
	if cfg.AdminUsername == "" && cfg.AdminPassword == "" {
		return nil
	}
	if cfg.AdminUsername == "" || cfg.AdminPassword == "" {
		return errors.New("set both GPT2D_ADMIN_USERNAME and GPT2D_ADMIN_PASSWORD, or neither")
	}
	has, err := db.HasAdmin()
	if err != nil {
		return err
	}
	if has {
		log.Info("admin bootstrap skipped: an admin exists", "username", cfg.AdminUsername)
		return nil
	}
	u, err := svc.Register(cfg.AdminUsername, cfg.AdminPassword, store.RoleAdmin)
	if err != nil {
		return fmt.Errorf("bootstrap admin %q: %w", cfg.AdminUsername, err)
	}
	db.AppendAudit(&store.Event{Time: time.Now().UTC(), Action: "user.bootstrap_admin", Target: u.Username})
	log.Info("audit", "action", "user.bootstrap_admin", "target", u.Username, "user_id", u.ID)
	return nil
}

// signupBudget is --signups-per-hour as the API takes it (0: unlimited).
func signupBudget(perHour int) auth.BudgetConfig {
	if perHour == 0 {
		return auth.BudgetConfig{Max: -1}
	}
	return auth.BudgetConfig{Max: perHour, Window: time.Hour}
}

// warnIfExposed warns when the server listens beyond loopback while
// anyone may register and no admin exists: the first stranger to find it
// can create accounts and spend its CPU, and nobody can disable them.
func warnIfExposed(addr net.Addr, cfg Config, db store.Store, log *slog.Logger) error {
	ta, ok := addr.(*net.TCPAddr)
	if !ok || ta.IP.IsLoopback() || cfg.Registration != "open" {
		return nil
	}
	has, err := db.HasAdmin()
	if err != nil || has {
		return err
	}
	log.Warn("listening beyond loopback with open registration and no admin: anyone who reaches this address can create accounts; "+
		"create an admin (gpt2d users create --role admin, or GPT2D_ADMIN_USERNAME/GPT2D_ADMIN_PASSWORD), set --registration closed, "+
		"or bind 127.0.0.1 behind a TLS proxy", "addr", addr.String())
	return nil
}

// noCapIfZero maps a flag's "0: no cap" onto api.Config's "negative: no
// cap" (its 0 means the default).
func noCapIfZero(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func blockedWords(path string) ([]string, error) {
	if path == "" {
		return nil, nil // api's defaults
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("blocked words: %w", err)
	}
	defer f.Close()
	return api.ReadWords(f)
}
