package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"gpt2d/auth"
	"gpt2d/gpt2"
	"gpt2d/store/postgres"
	"gpt2d/weights"
)

// Config is every setting of gpt2d serve, users and backup. Each field is
// set by a flag, else by its GPT2D_* environment variable, else by its
// default. Secrets (JWT secret, bootstrap admin password) come only from
// the environment or files: a command line is visible to every local user.
type Config struct {
	// Store: a bbolt file path, or a postgres:// URL of a database that
	// several replicas share.
	Data string // --store (alias --data), GPT2D_STORE (or GPT2D_DATA)

	// Model and engine
	Model     string // --model, GPT2D_MODEL
	ModelName string // --model-name, GPT2D_MODEL_NAME
	Slots     int    // --slots, GPT2D_SLOTS
	QueueSize int    // --queue, GPT2D_QUEUE
	KVCacheMB int    // --kv-cache-mb, GPT2D_KV_CACHE_MB (0: 8 full contexts of the model)
	// PrefixCache reuses the KV blocks of prompt prefixes seen before
	// (--prefix-cache, GPT2D_PREFIX_CACHE; default true).
	PrefixCache bool
	// PrefixCacheScope is who shares cached prefixes: user (each user's
	// own requests) or global (everyone's) (--prefix-cache-scope,
	// GPT2D_PREFIX_CACHE_SCOPE; default user).
	PrefixCacheScope string
	// KVDType is the KV cache's element type: f32, bf16 or f16
	// (--kv-dtype, GPT2D_KV_DTYPE; default f32).
	KVDType string
	Threads int // --threads, GPT2D_THREADS

	// HTTP
	Addr            string        // --addr, GPT2D_ADDR
	BodyLimit       int           // --body-limit, GPT2D_BODY_LIMIT (bytes)
	ReadTimeout     time.Duration // --read-timeout, GPT2D_READ_TIMEOUT
	WriteTimeout    time.Duration // --write-timeout, GPT2D_WRITE_TIMEOUT
	IdleTimeout     time.Duration // --idle-timeout, GPT2D_IDLE_TIMEOUT
	GenerateTimeout time.Duration // --generate-timeout, GPT2D_GENERATE_TIMEOUT
	ShutdownTimeout time.Duration // --shutdown-timeout, GPT2D_SHUTDOWN_TIMEOUT
	ProxyHeader     string        // --proxy-header, GPT2D_PROXY_HEADER
	TrustedProxies  []string      // --trusted-proxies, GPT2D_TRUSTED_PROXIES (comma-separated)
	Registration    string        // --registration, GPT2D_REGISTRATION: open | closed
	MaxConnsPerIP   int           // --max-conns-per-ip, GPT2D_MAX_CONNS_PER_IP (0: no cap)
	HeaderTimeout   time.Duration // --header-timeout, GPT2D_HEADER_TIMEOUT
	BlockedWords    string        // --blocked-words, GPT2D_BLOCKED_WORDS: file, one word per line
	SignupsPerHour  int           // --signups-per-hour, GPT2D_SIGNUPS_PER_HOUR: self-registrations per client address
	AllowedOrigins  []string      // --allowed-origins, GPT2D_ALLOWED_ORIGINS (comma-separated; CORS)
	ChatTemplate    string        // --chat-template, GPT2D_CHAT_TEMPLATE: JSON file (api.ChatTemplate)

	// Generation caps and per-role rate limits (0: unlimited)
	MaxNewTokens      int           // --max-new-tokens, GPT2D_MAX_NEW_TOKENS
	MaxChoices        int           // --max-choices, GPT2D_MAX_CHOICES
	UserRPM           int           // --user-requests-per-minute, GPT2D_USER_REQUESTS_PER_MINUTE
	UserTokensPerDay  int           // --user-tokens-per-day, GPT2D_USER_TOKENS_PER_DAY
	AdminRPM          int           // --admin-requests-per-minute, GPT2D_ADMIN_REQUESTS_PER_MINUTE
	AdminTokensPerDay int           // --admin-tokens-per-day, GPT2D_ADMIN_TOKENS_PER_DAY
	UsageFlush        time.Duration // --usage-flush, GPT2D_USAGE_FLUSH
	UserSequences     int           // --user-sequences, GPT2D_USER_SEQUENCES (0: half the slots; negative: no cap)

	// Retention
	AuditMaxAge    time.Duration // --audit-max-age, GPT2D_AUDIT_MAX_AGE (0: no bound)
	AuditMaxEvents int           // --audit-max-events, GPT2D_AUDIT_MAX_EVENTS (0: no bound)

	// Metrics
	MetricsToken     string // GPT2D_METRICS_TOKEN only
	MetricsTokenFile string // --metrics-token-file, GPT2D_METRICS_TOKEN_FILE

	// Auth
	JWTSecret     string        // GPT2D_JWT_SECRET only
	JWTSecretFile string        // --jwt-secret-file, GPT2D_JWT_SECRET_FILE
	TokenTTL      time.Duration // --token-ttl, GPT2D_TOKEN_TTL
	RefreshTTL    time.Duration // --refresh-ttl, GPT2D_REFRESH_TTL
	MaxSessions   int           // --max-sessions, GPT2D_MAX_SESSIONS: refresh-token families per user
	RefreshRate   int           // --refresh-per-minute, GPT2D_REFRESH_PER_MINUTE
	BcryptCost    int           // --bcrypt-cost, GPT2D_BCRYPT_COST
	AdminUsername string        // GPT2D_ADMIN_USERNAME only
	AdminPassword string        // GPT2D_ADMIN_PASSWORD only

	LogLevel  string // --log-level, GPT2D_LOG_LEVEL: debug | info | warn | error
	LogFormat string // --log-format, GPT2D_LOG_FORMAT: json | text (default: text on a terminal, else json)

	// First use
	ModelsDir  string // --models-dir, GPT2D_MODELS_DIR: where --model NAME is fetched and converted
	APIKey     string // GPT2D_API_KEY only
	APIKeyFile string // --api-key-file, GPT2D_API_KEY_FILE
}

// binder declares flags whose defaults come from the environment.
type binder struct {
	fs     *flag.FlagSet
	getenv func(string) string
	errs   []error
}

func newBinder(name string, getenv func(string) string, out io.Writer) *binder {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return &binder{fs: fs, getenv: getenv}
}

func (b *binder) env(key string) (string, bool) {
	v := b.getenv(key)
	return v, v != ""
}

func (b *binder) str(p *string, name, key, def, usage string) {
	if v, ok := b.env(key); ok {
		def = v
	}
	b.fs.StringVar(p, name, def, usage+" ("+key+")")
}

func (b *binder) int(p *int, name, key string, def int, usage string) {
	if v, ok := b.env(key); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q: not an integer", key, v))
		}
		def = n
	}
	b.fs.IntVar(p, name, def, usage+" ("+key+")")
}

func (b *binder) bool(p *bool, name, key string, def bool, usage string) {
	if v, ok := b.env(key); ok {
		t, err := strconv.ParseBool(v)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q: not a boolean (true or false)", key, v))
		}
		def = t
	}
	b.fs.BoolVar(p, name, def, usage+" ("+key+")")
}

func (b *binder) dur(p *time.Duration, name, key string, def time.Duration, usage string) {
	if v, ok := b.env(key); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.errs = append(b.errs, fmt.Errorf("%s=%q: not a duration (like 30s or 5m)", key, v))
		}
		def = d
	}
	b.fs.DurationVar(p, name, def, usage+" ("+key+")")
}

func (b *binder) list(p *[]string, name, key, usage string) {
	set := func(v string) error {
		*p = nil
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				*p = append(*p, s)
			}
		}
		return nil
	}
	if v, ok := b.env(key); ok {
		set(v)
	}
	b.fs.Func(name, usage+" ("+key+")", set)
}

func (b *binder) parse(args []string) error {
	if len(b.errs) > 0 {
		return errors.Join(b.errs...)
	}
	return parseFlags(b.fs, args)
}

func (c *Config) bindStore(b *binder) {
	def := "data/gpt2d.db"
	if v, ok := b.env("GPT2D_DATA"); ok {
		def = v
	}
	b.str(&c.Data, "store", "GPT2D_STORE", def, "store: a bbolt file path, or a postgres:// URL shared by replicas")
	b.fs.StringVar(&c.Data, "data", c.Data, "alias of --store (GPT2D_DATA)")
}

func (c *Config) bindAuth(b *binder) {
	b.int(&c.BcryptCost, "bcrypt-cost", "GPT2D_BCRYPT_COST", 11, "bcrypt work factor (10-31; 4 for tests only)")
	b.str(&c.LogLevel, "log-level", "GPT2D_LOG_LEVEL", "info", "debug, info, warn or error; debug logs prompts")
	b.str(&c.LogFormat, "log-format", "GPT2D_LOG_FORMAT", "", "json or text (default: text when stderr is a terminal, else json)")
}

func (c *Config) bindServe(b *binder) {
	b.str(&c.Model, "model", "GPT2D_MODEL", "models/gpt2.gpt2d", "converted weights file, Hugging Face checkpoint or cache directory, or a model name (gpt2, openai-community/gpt2, ...) fetched and converted on first use")
	b.str(&c.ModelsDir, "models-dir", "GPT2D_MODELS_DIR", "models", "where models named by --model are fetched and converted")
	b.str(&c.ModelName, "model-name", "GPT2D_MODEL_NAME", "gpt2", "model name reported by /generate and /v1/models")
	b.int(&c.Slots, "slots", "GPT2D_SLOTS", 0, "most sequences generated at once (0: engine default, 32); how many fit is bounded by --kv-cache-mb")
	b.int(&c.QueueSize, "queue", "GPT2D_QUEUE", 0, "requests waiting for a slot before 503 (0: engine default)")
	b.int(&c.KVCacheMB, "kv-cache-mb", "GPT2D_KV_CACHE_MB", 0, "KV cache pool in MiB shared by all sequences; bounds how many run at once (0: as much as 8 full-context sequences of the model, 600 MiB for GPT-2 124M)")
	b.str(&c.KVDType, "kv-dtype", "GPT2D_KV_DTYPE", "f32", "KV cache element type: f32, or f16 / bf16 for half the memory per position (f16 kept every greedy continuation of the test fixtures, bf16 not all)")
	b.bool(&c.PrefixCache, "prefix-cache", "GPT2D_PREFIX_CACHE", true, "reuse the KV cache of prompt prefixes seen before (--prefix-cache=false to turn off)")
	b.str(&c.PrefixCacheScope, "prefix-cache-scope", "GPT2D_PREFIX_CACHE_SCOPE", "user", "who shares cached prompt prefixes: user (only each user's own requests, across their sessions and API keys) or global (all users: a common system prompt is computed once, but the time to first token then tells a user whether anyone sent a prefix recently; for single-tenant deployments)")
	b.int(&c.Threads, "threads", "GPT2D_THREADS", 0, "kernel threads (0: all CPUs)")
	b.str(&c.Addr, "addr", "GPT2D_ADDR", "127.0.0.1:8000", "listen address (loopback by default; put a TLS proxy in front for a public bind)")
	b.int(&c.BodyLimit, "body-limit", "GPT2D_BODY_LIMIT", 64<<10, "request body limit in bytes")
	b.dur(&c.ReadTimeout, "read-timeout", "GPT2D_READ_TIMEOUT", 10*time.Second, "time to read a request")
	b.dur(&c.WriteTimeout, "write-timeout", "GPT2D_WRITE_TIMEOUT", 30*time.Second, "time to write a response")
	b.dur(&c.IdleTimeout, "idle-timeout", "GPT2D_IDLE_TIMEOUT", 60*time.Second, "keep-alive idle time")
	b.dur(&c.GenerateTimeout, "generate-timeout", "GPT2D_GENERATE_TIMEOUT", 120*time.Second, "deadline of one generation, queueing included")
	b.dur(&c.ShutdownTimeout, "shutdown-timeout", "GPT2D_SHUTDOWN_TIMEOUT", 30*time.Second, "time to drain in-flight requests on SIGTERM")
	b.str(&c.ProxyHeader, "proxy-header", "GPT2D_PROXY_HEADER", "", "header with the client IP, behind a reverse proxy only")
	b.list(&c.TrustedProxies, "trusted-proxies", "GPT2D_TRUSTED_PROXIES", "comma-separated proxy IPs or CIDRs whose proxy header is believed")
	b.str(&c.Registration, "registration", "GPT2D_REGISTRATION", "open", "open: anyone may register; closed: admins only")
	b.int(&c.MaxConnsPerIP, "max-conns-per-ip", "GPT2D_MAX_CONNS_PER_IP", 128, "connections one client address may hold (IPv6: its /64; trusted proxies exempt; 0: no cap)")
	b.dur(&c.HeaderTimeout, "header-timeout", "GPT2D_HEADER_TIMEOUT", 5*time.Second, "time a connection has to send a complete request header")
	b.str(&c.BlockedWords, "blocked-words", "GPT2D_BLOCKED_WORDS", "", `file of words refused in prompts (default "hate", "violence"; an empty file disables the filter)`)
	b.int(&c.SignupsPerHour, "signups-per-hour", "GPT2D_SIGNUPS_PER_HOUR", 20, "accounts one client address may register per hour (0: unlimited; admins are not counted)")
	b.list(&c.AllowedOrigins, "allowed-origins", "GPT2D_ALLOWED_ORIGINS", `comma-separated browser origins (scheme://host[:port], or "*") that may call the API cross-origin (default none)`)
	b.str(&c.ChatTemplate, "chat-template", "GPT2D_CHAT_TEMPLATE", "", `JSON file {"template": Go text/template over .Messages, "stop": [turn markers]} for /v1/chat/completions (default: a "User:"/"Assistant:" transcript)`)
	b.int(&c.MaxNewTokens, "max-new-tokens", "GPT2D_MAX_NEW_TOKENS", 512, "most tokens one generation may ask for")
	b.int(&c.MaxChoices, "max-choices", "GPT2D_MAX_CHOICES", 8, "most completions one /v1/completions request may ask for (prompts × n)")
	b.int(&c.UserRPM, "user-requests-per-minute", "GPT2D_USER_REQUESTS_PER_MINUTE", 60, "generation requests per minute of a user (0: unlimited; admins override per user)")
	b.int(&c.UserTokensPerDay, "user-tokens-per-day", "GPT2D_USER_TOKENS_PER_DAY", 0, "prompt + completion tokens per UTC day of a user (0: unlimited)")
	b.int(&c.AdminRPM, "admin-requests-per-minute", "GPT2D_ADMIN_REQUESTS_PER_MINUTE", 0, "generation requests per minute of an admin (0: unlimited)")
	b.int(&c.AdminTokensPerDay, "admin-tokens-per-day", "GPT2D_ADMIN_TOKENS_PER_DAY", 0, "tokens per UTC day of an admin (0: unlimited)")
	b.dur(&c.UsageFlush, "usage-flush", "GPT2D_USAGE_FLUSH", time.Second, "how often token usage is written to the store")
	b.int(&c.UserSequences, "user-sequences", "GPT2D_USER_SEQUENCES", 0, "sequences one user may have queued or running (0: half the slots; negative: no cap)")
	b.dur(&c.AuditMaxAge, "audit-max-age", "GPT2D_AUDIT_MAX_AGE", 90*24*time.Hour, "audit events older than this are pruned (0: keep)")
	b.int(&c.AuditMaxEvents, "audit-max-events", "GPT2D_AUDIT_MAX_EVENTS", 1_000_000, "most audit events kept, the newest (0: no bound)")
	b.str(&c.MetricsTokenFile, "metrics-token-file", "GPT2D_METRICS_TOKEN_FILE", "", "file holding a bearer token that may read /metrics (else GPT2D_METRICS_TOKEN; admins may always)")
	c.bindKeyFile(b)
	b.dur(&c.TokenTTL, "token-ttl", "GPT2D_TOKEN_TTL", 30*time.Minute, "access token lifetime")
	b.dur(&c.RefreshTTL, "refresh-ttl", "GPT2D_REFRESH_TTL", 7*24*time.Hour, "refresh token lifetime")
	b.int(&c.MaxSessions, "max-sessions", "GPT2D_MAX_SESSIONS", 20, "refresh-token sessions (logins) per user; a login beyond it ends the oldest")
	b.int(&c.RefreshRate, "refresh-per-minute", "GPT2D_REFRESH_PER_MINUTE", 12, "token refreshes per user per minute")
	c.JWTSecret = b.getenv("GPT2D_JWT_SECRET")
	c.AdminUsername = b.getenv("GPT2D_ADMIN_USERNAME")
	c.AdminPassword = b.getenv("GPT2D_ADMIN_PASSWORD")
	c.MetricsToken = b.getenv("GPT2D_METRICS_TOKEN")
	b.str(&c.APIKeyFile, "api-key-file", "GPT2D_API_KEY_FILE", "", "file holding a local API key (any string of ≥ 16 bytes) with the bootstrap admin's rights, as llama-server's --api-key; else GPT2D_API_KEY")
	c.APIKey = b.getenv("GPT2D_API_KEY")
}

func (c *Config) bindKeyFile(b *binder) {
	b.str(&c.JWTSecretFile, "jwt-secret-file", "GPT2D_JWT_SECRET_FILE", "",
		"file holding the JWT signing key, created 0600 with a random key if missing (default: a bbolt store's path + .jwt-key; with PostgreSQL, a key kept in the database); ignored when GPT2D_JWT_SECRET is set")
}

// keyFile is the JWT key file in force: --jwt-secret-file, or beside a
// bbolt store; "" for a PostgreSQL store without one, whose replicas
// share a key kept in the database.
func (c *Config) keyFile() string {
	switch {
	case c.JWTSecretFile != "":
		return c.JWTSecretFile
	case postgres.IsURL(c.Data):
		return ""
	}
	return auth.DefaultKeyFile(c.Data)
}

// validate checks values no flag type can.
func (c *Config) validate() error {
	switch c.Registration {
	case "open", "closed":
	default:
		return fmt.Errorf("--registration %q: want open or closed", c.Registration)
	}
	if _, err := kvDType(c.KVDType); err != nil {
		return err
	}
	switch c.PrefixCacheScope {
	case "user", "global":
	default:
		return fmt.Errorf("--prefix-cache-scope %q: want user or global", c.PrefixCacheScope)
	}
	if c.ProxyHeader != "" && len(c.TrustedProxies) == 0 {
		return errors.New("--proxy-header needs --trusted-proxies: any client could otherwise choose its IP")
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"--user-requests-per-minute", c.UserRPM}, {"--user-tokens-per-day", c.UserTokensPerDay},
		{"--admin-requests-per-minute", c.AdminRPM}, {"--admin-tokens-per-day", c.AdminTokensPerDay},
		{"--max-new-tokens", c.MaxNewTokens}, {"--max-choices", c.MaxChoices}, {"--signups-per-hour", c.SignupsPerHour},
		{"--max-conns-per-ip", c.MaxConnsPerIP}, {"--audit-max-events", c.AuditMaxEvents},
		{"--max-sessions", c.MaxSessions}, {"--refresh-per-minute", c.RefreshRate}, {"--kv-cache-mb", c.KVCacheMB}} {
		if v.n < 0 {
			return fmt.Errorf("%s %d: must not be negative", v.name, v.n)
		}
	}
	for _, v := range []struct {
		name string
		d    time.Duration
	}{{"--header-timeout", c.HeaderTimeout}, {"--audit-max-age", c.AuditMaxAge}} {
		if v.d < 0 {
			return fmt.Errorf("%s %s: must not be negative", v.name, v.d)
		}
	}
	return nil
}

// apiKey returns the local API key: the file's content if --api-key-file
// is set, else GPT2D_API_KEY, else none.
func (c *Config) apiKey() (string, error) {
	if c.APIKeyFile == "" {
		return c.APIKey, nil
	}
	b, err := os.ReadFile(c.APIKeyFile)
	if err != nil {
		return "", fmt.Errorf("api key file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// metricsToken returns the /metrics bearer token: the file's content if
// --metrics-token-file is set, else GPT2D_METRICS_TOKEN, else none. A
// token shorter than 16 bytes is refused: it guards the server's load
// figures and could be guessed.
func (c *Config) metricsToken() (string, error) {
	tok := c.MetricsToken
	if c.MetricsTokenFile != "" {
		b, err := os.ReadFile(c.MetricsTokenFile)
		if err != nil {
			return "", fmt.Errorf("metrics token file: %w", err)
		}
		tok = strings.TrimSpace(string(b))
	}
	if tok != "" && len(tok) < 16 {
		return "", errors.New("metrics token: at least 16 bytes")
	}
	return tok, nil
}

// newLogger returns the logger all subcommands write to w: format is
// "json" (one object a line, for collectors), "text" (key=value, for
// people), or "" for text when w is a terminal and JSON otherwise.
func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: l}
	if format == "" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", format)
}

// kvDType returns the KV cache element type a --kv-dtype value names.
func kvDType(s string) (weights.DType, error) {
	d := weights.DType(strings.ToUpper(s))
	if err := gpt2.CheckKVDType(d); err != nil {
		return "", fmt.Errorf("--kv-dtype %q: want f32, bf16 or f16", s)
	}
	return d, nil
}
