// Package api is gpt2d's HTTP interface: a Fiber app that speaks the
// original FastAPI service's contract (paths, status codes, bodies) and
// adds what that service lacked — deny-by-default authentication, API
// keys, admin controls, throttling, per-user rate limits and usage
// accounting, request limits, an audit trail — and what users of LLM
// servers expect: token streaming, an OpenAI-compatible API under /v1
// (completions, chat completions, models), tokenize/detokenize, CORS,
// request ids and Prometheus metrics.
//
// Handlers translate HTTP into calls on auth, store and a Generator and
// know nothing of tensors or tokenizers: a generation request is parsed,
// prepared by the Generator (tokenized and checked), admitted against the
// caller's limits, run, and rendered. Validation and error bodies live in
// validate.go and errors.go; generation.go runs the engine requests
// behind one HTTP request, stream.go has the one streaming driver;
// generate.go, completions.go and chat.go are the three generation
// endpoints, openai.go what the /v1 ones share.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/valyala/fasthttp"

	"gpt2d/auth"
	"gpt2d/console"
	"gpt2d/gpt2"
	"gpt2d/gpt2/tokenizer"
	"gpt2d/store"
)

// Generator is the model layer as the API needs it; *gpt2.Engine is one.
// The API tokenizes, checks lengths and scores only through it: a request
// is prepared (tokenized and checked, so its cost is known before it is
// admitted), then run or scored.
type Generator interface {
	// Prepare checks req and tokenizes its prompt; see gpt2.Engine.Prepare.
	Prepare(req gpt2.Request) (*gpt2.Prepared, error)
	// Run generates p's continuation, calling emit with text as it comes.
	Run(ctx context.Context, p *gpt2.Prepared, emit func(gpt2.Chunk) error) (*gpt2.Result, error)
	// Score returns the log-probabilities of p's prompt tokens.
	Score(ctx context.Context, p *gpt2.Prepared, top int) ([]gpt2.TokenLogprob, error)
	// Tokenize, Pieces and Detokenize convert between text and tokens.
	Tokenize(text string) []int
	Pieces(text string) ([]tokenizer.Piece, error)
	Detokenize(ids []int) (string, error)
	Info() gpt2.ModelInfo
	Stats() gpt2.Stats
}

// Config configures a Server. Store and Auth are required; every other
// zero value means a working default.
type Config struct {
	Store store.Store
	Auth  *auth.Service
	// Logger receives request and audit lines (nil → slog.Default()).
	Logger *slog.Logger

	// ModelName is reported as "model" and "model_name" by /generate
	// ("" → the Generator's model name, or "gpt2").
	ModelName string
	// RegistrationClosed makes POST /users admin-only.
	RegistrationClosed bool
	// BlockedWords are refused in prompts (nil → DefaultBlockedWords()).
	BlockedWords []string

	// BodyLimit caps request bodies (0 → 64 KiB); larger ones get 413.
	BodyLimit int
	// HeaderLimit caps the request line plus headers (0 → 8 KiB);
	// larger ones get 431.
	HeaderLimit int
	// ReadTimeout, WriteTimeout and IdleTimeout bound reading a request,
	// writing a response and keeping an idle connection (0 → 10 s, 30 s,
	// 60 s).
	ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// GenerateTimeout is the deadline of one generation, queueing
	// included (0 → 120 s); past it the client gets 504.
	GenerateTimeout time.Duration
	// MaxConns caps concurrent connections (0 → 1024).
	MaxConns int
	// MaxConnsPerIP caps the connections of one client address (an IPv6
	// /64), trusted proxies exempt (0 → 128; negative: no cap). See
	// conns.go.
	MaxConnsPerIP int
	// HeaderTimeout bounds the wait for a complete request header, from
	// the connection's start or its first byte after idling (0 → 5 s);
	// ReadTimeout then bounds reading the body.
	HeaderTimeout time.Duration
	// MaxUserSequences caps one user's engine sequences queued or running
	// at once (a /v1/completions request runs prompts × n), so that no
	// user can hold every slot and the queue (0 → half the engine's
	// slots, at least 1; negative: no cap).
	MaxUserSequences int
	// PrefixCacheScope says which requests share the engine's cached
	// prompt prefixes ("" → PrefixCacheUser). See PrefixCacheScope.
	PrefixCacheScope PrefixCacheScope

	// Generation caps what one generation request may ask for.
	Generation GenerationLimits
	// UserLimits and AdminLimits are the rate limits of each role (zero
	// fields: unlimited); admins override them per user.
	UserLimits, AdminLimits Limits
	// UsageFlushInterval is how often recorded token usage is written to
	// the store (0 → 1 s).
	UsageFlushInterval time.Duration
	// AuditRetention bounds the audit trail; the zero value keeps every
	// event. PruneInterval is how often it and expired refresh tokens are
	// pruned, in the background (0 → 1 minute).
	AuditRetention store.AuditRetention
	PruneInterval  time.Duration
	// MetricsToken, if set, is a bearer token that may read /metrics (and
	// nothing else), for a Prometheus server that holds no account.
	// Admins may read /metrics either way.
	MetricsToken string

	// RegisterThrottle limits failed registrations (duplicate names,
	// forbidden roles) per client address and per username.
	RegisterThrottle auth.ThrottleConfig
	// SignupBudget bounds successful self-registrations per client address
	// (zero Max → 20 per hour; negative Max: unlimited). Accounts an admin
	// creates do not count.
	SignupBudget auth.BudgetConfig
	// Counters keeps the registration throttle's and budget's counts (nil:
	// in process); replicas share them through a shared store.
	Counters auth.CounterStore
	// RequestRates keeps the per-minute request limits' state (nil: in
	// process) and Quota the daily token-quota reservations (nil: in
	// process): replicas sharing one store (PostgreSQL) give both, so
	// that together they admit what one process would (see shared.go).
	RequestRates auth.CounterStore
	Quota        store.QuotaStore
	// ProxyHeader names the header holding the client address (for
	// example X-Forwarded-For); TrustedProxies lists the proxies (IPs or
	// CIDRs) whose header is believed. The client is the right-most
	// address in the header that is not a trusted proxy; see clientAddrs.
	ProxyHeader    string
	TrustedProxies []string

	// ChatTemplate renders /v1/chat/completions messages as a prompt
	// (nil → DefaultChatTemplate).
	ChatTemplate *ChatTemplate
	// AllowedOrigins are the browser origins (scheme://host[:port], or
	// "*") that may call the API cross-origin (CORS); none by default.
	AllowedOrigins []string

	// Now is the clock for audit timestamps (nil → time.Now).
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.BlockedWords == nil {
		c.BlockedWords = DefaultBlockedWords()
	}
	if c.BodyLimit <= 0 {
		c.BodyLimit = 64 << 10
	}
	if c.HeaderLimit <= 0 {
		c.HeaderLimit = 8 << 10
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.GenerateTimeout <= 0 {
		c.GenerateTimeout = 120 * time.Second
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 1024
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = 128
	}
	if c.HeaderTimeout <= 0 {
		c.HeaderTimeout = 5 * time.Second
	}
	if c.PruneInterval <= 0 {
		c.PruneInterval = time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.UsageFlushInterval <= 0 {
		c.UsageFlushInterval = time.Second
	}
	if c.SignupBudget.Max == 0 {
		c.SignupBudget.Max = 20
	}
	if c.Counters == nil {
		c.Counters = auth.NewMemoryCounters(0)
	}
	c.Generation = c.Generation.withDefaults()
	if c.ChatTemplate == nil {
		c.ChatTemplate = DefaultChatTemplate()
	}
	return c
}

// Server is the HTTP API. Its methods are safe for concurrent use.
type Server struct {
	cfg       Config
	log       *slog.Logger
	app       *fiber.App
	db        store.Store
	auth      *auth.Service
	filter    *Filter
	registers *auth.Throttle // failed registrations
	signups   *auth.Budget   // successful self-registrations
	addrs     *clientAddrs
	throttled throttledAudit
	gen       atomic.Pointer[generatorBox]
	loadedAt  atomic.Int64 // Unix time the generator was set
	tel       *telemetry
	routes    *routeLabels
	usage     *usageRecorder
	quota     tokenQuota
	seqs      *sequenceCounter
	requests  requestLimiter
	conns     *connTracker
	janitor   *janitor
	// base is the context of every generation; Shutdown cancels it, with
	// errShutdown, when its deadline passes. gens counts generations not
	// yet finished.
	base       context.Context
	cancelBase context.CancelCauseFunc
	gens       inflight
	jwt        fiber.Handler // contrib/jwt verifying access tokens
	site       *console.Site // the web console and /docs
}

type generatorBox struct{ Generator }

// New builds the Server and its routes. Until SetGenerator is called,
// /health and /generate answer 503.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Auth == nil {
		return nil, errors.New("api: Config.Store and Config.Auth are required")
	}
	cfg = cfg.withDefaults()
	if err := checkOrigins(cfg.AllowedOrigins); err != nil {
		return nil, err
	}
	if err := cfg.PrefixCacheScope.Check(); err != nil {
		return nil, err
	}
	filter, err := NewFilter(cfg.BlockedWords)
	if err != nil {
		return nil, err
	}
	addrs, err := newClientAddrs(cfg.ProxyHeader, cfg.TrustedProxies)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:       cfg,
		log:       cfg.Logger,
		db:        cfg.Store,
		auth:      cfg.Auth,
		filter:    filter,
		registers: auth.NewThrottle(cfg.RegisterThrottle, cfg.Counters, "registration", cfg.Now),
		signups:   auth.NewBudget(cfg.SignupBudget, cfg.Counters, "signups", cfg.Now),
		addrs:     addrs,
		requests:  newRequestLimiter(cfg.RequestRates),
		seqs:      newSequenceCounter(),
		conns:     newConnTracker(max(cfg.MaxConnsPerIP, 0), cfg.TrustedProxies),
	}
	if s.site, err = console.New(console.Options{RegistrationOpen: !cfg.RegistrationClosed}); err != nil {
		return nil, err
	}
	s.base, s.cancelBase = context.WithCancelCause(context.Background())
	s.tel = newTelemetry(s.generator)
	registerAuthMetrics(s.tel.reg, cfg.Auth, &s.throttled)
	s.jwt = s.newJWTMiddleware()
	s.app = fiber.New(fiber.Config{
		AppName:               "gpt2d",
		ServerHeader:          "",
		BodyLimit:             cfg.BodyLimit,
		ReadBufferSize:        cfg.HeaderLimit,
		ReadTimeout:           cfg.HeaderTimeout, // the body gets ReadTimeout: see HeaderReceived below
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		Concurrency:           cfg.MaxConns,
		CaseSensitive:         true,
		StrictRouting:         true,
		DisableStartupMessage: true,
		ErrorHandler:          s.errorHandler,
		// No ProxyHeader: c.IP() is the socket's peer; the client address
		// is s.clientIP(c), which reads the proxy header safely.
	})
	srv := s.app.Server()
	srv.HeaderReceived = func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
		return fasthttp.RequestConfig{ReadTimeout: cfg.ReadTimeout}
	}
	srv.ConnState = s.conns.connState
	s.mount()
	s.routes = newRouteLabels(s.app)
	s.usage = newUsageRecorder(cfg.Store, cfg.Logger, cfg.UsageFlushInterval)
	s.quota = newMemQuota(s.usage)
	if cfg.Quota != nil {
		s.quota = &sharedQuota{qs: cfg.Quota, usage: s.usage, log: cfg.Logger, hold: cfg.GenerateTimeout + time.Minute}
	}
	s.janitor = startJanitor(cfg.Store, cfg.Logger, cfg.AuditRetention, cfg.PruneInterval, cfg.Now)
	return s, nil
}

// mount registers every endpoint. Everything is behind authenticate
// except the routes listed in publicRoutes.
func (s *Server) mount() {
	app := s.app
	app.Use(s.requestIDs, s.logRequests, recover.New(), securityHeaders, s.cors())
	s.mountConsole(app) // static and public: before authenticate
	app.Use(s.authenticate)

	app.Get("/health", s.health)
	app.Get("/docs", s.docsPage)
	app.Get("/openapi.json", openAPIDocument)

	app.Post("/users", s.register)
	app.Post("/token", s.login)
	app.Post("/token/refresh", s.refresh)
	app.Post("/logout", s.requireSession, s.logout)
	app.Get("/users/me", s.me)
	app.Post("/users/me/password", s.requireSession, s.changePassword)
	app.Get("/users/me/usage", s.myUsage)
	app.Post("/users/me/keys", s.requireSession, s.createKey)
	app.Get("/users/me/keys", s.requireSession, s.listKeys)
	app.Post("/users/me/keys/revoke-all", s.requireSession, s.revokeAllKeys)
	app.Delete("/users/me/keys/:key_id", s.requireSession, s.revokeKey)

	app.Post("/generate", s.requireGenerate, s.generate)
	app.Post("/v1/completions", s.requireGenerate, s.completions)
	app.Post("/v1/chat/completions", s.requireGenerate, s.chatCompletions)
	app.Post("/tokenize", s.requireGenerate, s.tokenize)
	app.Post("/detokenize", s.requireGenerate, s.detokenize)
	app.Get("/v1/models", s.requireGenerate, s.listModels)
	app.Get("/v1/models/:model", s.requireGenerate, s.getModel)

	app.Get("/metrics", s.metrics)

	admin := app.Group("/admin", s.requireAdmin)
	admin.Get("/users", s.listUsers)
	admin.Patch("/users/:user_id", s.updateUser)
	admin.Delete("/users/:user_id", s.deleteUser)
	admin.Post("/users/:user_id/keys/rearm", s.rearmKeys)
	admin.Get("/users/:user_id/limits", s.userLimits)
	admin.Put("/users/:user_id/limits", s.setUserLimits)
	admin.Get("/usage", s.adminUsage)
	admin.Get("/audit", s.listAudit)
	admin.Get("/backup", s.backup)
}

// App returns the Fiber app, for serving on a listener or app.Test.
func (s *Server) App() *fiber.App { return s.app }

// Serve serves HTTP on ln until Shutdown, with the per-address
// connection cap (Config.MaxConnsPerIP) applied to ln.
func (s *Server) Serve(ln net.Listener) error { return s.app.Listener(s.conns.listener(ln)) }

// Shutdown stops accepting connections and waits for in-flight requests
// (generations and streams included) to finish, or for ctx to end. If ctx
// ends first, it cuts what is left: generations still queued or running
// end with 503 "Server is shutting down" (Retry-After), streams with an
// error event saying the same, and their usage is recorded; it waits up
// to cutGrace for those answers to be written, then closes every
// connection. Last it writes the usage still pending to the store. Call
// it before closing the store.
func (s *Server) Shutdown(ctx context.Context) error {
	s.janitor.close()
	err := s.app.ShutdownWithContext(ctx)
	if err != nil {
		s.cut()
	}
	s.usage.close()
	return err
}

// SetGenerator makes the model available; /health turns 200.
func (s *Server) SetGenerator(g Generator) {
	s.loadedAt.Store(s.cfg.Now().Unix())
	s.gen.Store(&generatorBox{g})
}

// SetModelLoadTime reports how long loading the model took, for the
// gpt2d_model_load_seconds metric.
func (s *Server) SetModelLoadTime(d time.Duration) { s.tel.modelLoad.set(d.Seconds()) }

// loadedGenerator returns the generator, or a 503 while the model loads.
func (s *Server) loadedGenerator() (Generator, error) {
	if g := s.generator(); g != nil {
		return g, nil
	}
	return nil, retryLater(fiber.StatusServiceUnavailable, "Model is loading, retry later", 5*time.Second)
}

func (s *Server) generator() Generator {
	if b := s.gen.Load(); b != nil {
		return b.Generator
	}
	return nil
}

// health is 200 once the model is loaded and 503 before.
func (s *Server) health(c *fiber.Ctx) error {
	g := s.generator()
	if g == nil {
		c.Set(fiber.HeaderRetryAfter, "5")
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "loading"})
	}
	st := g.Stats()
	// A replica whose shared store is unreachable cannot authenticate
	// anyone: it reports 503 so that a load balancer routes around it,
	// and turns 200 again by itself once the store answers.
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
	defer cancel()
	if err := s.db.Ping(ctx); err != nil {
		s.log.Warn("health: store unreachable", "store", s.db.Kind(), "err", err)
		c.Set(fiber.HeaderRetryAfter, "5")
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "store_unavailable", "store": s.db.Kind(),
			"model": s.modelName(g), "active": st.Active, "queued": st.Queued})
	}
	return c.JSON(fiber.Map{"status": "ok", "store": s.db.Kind(), "model": s.modelName(g), "active": st.Active, "queued": st.Queued})
}

func (s *Server) modelName(g Generator) string {
	if s.cfg.ModelName != "" {
		return s.cfg.ModelName
	}
	if g != nil {
		if n := g.Info().Name; n != "" {
			return n
		}
	}
	return "gpt2"
}
