package auth

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"gpt2d/store"
)

// clock is an injectable, settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2031, 5, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var testKey = []byte(strings.Repeat("k", 32))

func newService(t *testing.T, cfg Config) (*Service, *store.DB, *clock) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "auth.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clk := newClock()
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = bcrypt.MinCost
	}
	cfg.Now = clk.Now
	s, err := New(db, testKey, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s, db, clk
}

func TestPasswordPolicy(t *testing.T) {
	tests := []struct {
		name     string
		password string
		rule     string // "" = accepted
	}{
		{"eight ASCII characters", "abcdefgh", ""},
		{"seven characters", "abcdefg", RuleTooShort},
		{"eight multibyte characters count as eight", "ééééééé€", ""},
		{"four emoji are four characters though sixteen bytes", "😀😀😀😀", RuleTooShort},
		{"exactly 72 bytes", strings.Repeat("a", 72), ""},
		{"73 bytes", strings.Repeat("a", 73), RuleTooLong},
		{"72 characters but more bytes", strings.Repeat("é", 40), RuleTooLong},
		{"NUL inside", "abcd\x00efgh", RuleNUL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := PasswordPolicy{}.Check(tt.password)
			var pe *PolicyError
			switch {
			case tt.rule == "" && err != nil:
				t.Fatalf("rejected: %v", err)
			case tt.rule != "" && (!errors.As(err, &pe) || pe.Rule != tt.rule):
				t.Fatalf("Check = %v, want rule %s", err, tt.rule)
			}
		})
	}
}

func TestConfigRejectsShortKeyAndBadCost(t *testing.T) {
	if _, err := New(nil, []byte("short"), Config{}); !errors.Is(err, ErrShortKey) {
		t.Fatalf("short key: %v", err)
	}
	if _, err := New(nil, testKey, Config{BcryptCost: 99}); err == nil {
		t.Fatal("cost 99 accepted")
	}
}

func TestLoginSameAnswerForUnknownUserWrongPasswordAndDisabled(t *testing.T) {
	s, _, _ := newService(t, Config{})
	if _, err := s.Register("alice", "correct horse", store.RoleUser); err != nil {
		t.Fatal(err)
	}
	dis, _ := s.Register("mallory", "correct horse", store.RoleUser)
	s.Update(dis.ID, func(u *store.User) error { u.Disabled = true; return nil })

	tests := []struct{ name, user, pass string }{
		{"unknown user", "nobody", "correct horse"},
		{"wrong password", "alice", "wrong horse"},
		{"disabled account", "mallory", "correct horse"},
		{"password longer than bcrypt reads", "alice", "correct horse" + strings.Repeat("x", 80)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.Login("10.0.0."+tt.name, tt.user, tt.pass); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("Login = %v, want ErrInvalidCredentials", err)
			}
		})
	}
	if u, err := s.Login("ip", "ALICE", "correct horse"); err != nil || u.Username != "alice" {
		t.Fatalf("good login = %v, %v", u, err)
	}
}

func TestUnknownUserCostsOneBcryptComparison(t *testing.T) {
	if testing.Short() {
		t.Skip("timing")
	}
	s, _, _ := newService(t, Config{BcryptCost: 10})
	s.Register("alice", "correct horse", store.RoleUser)
	measure := func(user string) time.Duration {
		best := time.Hour
		for range 5 {
			start := time.Now()
			s.Login("ip-"+user, user, "wrong password")
			best = min(best, time.Since(start))
		}
		return best
	}
	known, unknown := measure("alice"), measure("nobody")
	ratio := float64(unknown) / float64(known)
	t.Logf("wrong password %v, unknown user %v", known, unknown)
	// Loose bounds: the machine may be busy. Without the dummy comparison
	// the ratio would be near 0.
	if ratio < 0.5 || ratio > 2 {
		t.Fatalf("unknown user took %.2f× the time of a wrong password", ratio)
	}
}

func TestLoginThrottledAfterFiveFailures(t *testing.T) {
	s, _, clk := newService(t, Config{})
	s.Register("bob", "correct horse", store.RoleUser)
	for i := range 5 {
		if _, err := s.Login("1.2.3.4", "bob", "nope"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	// Sixth attempt fails too and starts the back-off: even the right
	// password is refused, from another IP, without a bcrypt comparison.
	s.Login("1.2.3.4", "bob", "nope")
	_, err := s.Login("5.6.7.8", "bob", "correct horse")
	var te *ThrottledError
	if !errors.As(err, &te) || te.RetryAfter <= 0 {
		t.Fatalf("login while throttled = %v", err)
	}
	clk.Advance(te.RetryAfter)
	if _, err := s.Login("5.6.7.8", "bob", "correct horse"); err != nil {
		t.Fatalf("login after waiting = %v", err)
	}
}

func TestThrottleBackOffDoublesAndIsBounded(t *testing.T) {
	clk := newClock()
	th := NewThrottle(ThrottleConfig{MaxKeys: 100}, clk.Now)
	var waits []time.Duration
	for range 9 {
		th.Fail("k")
		waits = append(waits, th.Wait("k"))
	}
	want := []time.Duration{0, 0, 0, 0, 0, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits = %v, want %v", waits, want)
		}
	}
	for i := range 1000 {
		th.Fail(fmt.Sprintf("other%d", i))
	}
	if th.Len() > 100 {
		t.Fatalf("throttle tracks %d keys, bound is 100", th.Len())
	}
	clk.Advance(time.Hour)
	if th.Wait("other") != 0 {
		t.Fatal("key not forgotten")
	}
}

func TestLoadKey(t *testing.T) {
	_, db, _ := newService(t, Config{})
	if _, err := LoadKey(db, "too short", ""); !errors.Is(err, ErrShortKey) {
		t.Fatalf("short secret: %v", err)
	}
	k1, err := LoadKey(db, "", "")
	if err != nil || len(k1) < MinKeyBytes {
		t.Fatalf("generated key %d bytes, %v", len(k1), err)
	}
	k2, _ := LoadKey(db, "", "")
	if string(k1) != string(k2) {
		t.Fatal("stored key changed between loads")
	}
	secret := strings.Repeat("s", 40)
	if k, _ := LoadKey(db, secret, ""); string(k) != secret {
		t.Fatal("secret not used")
	}
}

func BenchmarkHashPassword(b *testing.B) {
	for _, cost := range []int{bcrypt.MinCost, 10, DefaultBcryptCost, 12} {
		b.Run(fmt.Sprintf("cost=%d", cost), func(b *testing.B) {
			for b.Loop() {
				bcrypt.GenerateFromPassword([]byte("correct horse battery"), cost)
			}
		})
	}
}
