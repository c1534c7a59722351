package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
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
			if _, err := s.Login(context.Background(), "10.0.0."+tt.name, tt.user, tt.pass); !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("Login = %v, want ErrInvalidCredentials", err)
			}
		})
	}
	if u, err := s.Login(context.Background(), "ip", "ALICE", "correct horse"); err != nil || u.Username != "alice" {
		t.Fatalf("good login = %v, %v", u, err)
	}
}

// countingCompare is a Config.Compare that counts comparisons.
type countingCompare struct{ n atomic.Int64 }

func (c *countingCompare) compare(hash, password []byte) error {
	c.n.Add(1)
	return bcrypt.CompareHashAndPassword(hash, password)
}

func TestUnknownUserCostsOneBcryptComparison(t *testing.T) {
	var cmp countingCompare
	s, _, _ := newService(t, Config{Compare: cmp.compare})
	s.Register("alice", "correct horse", store.RoleUser)
	for _, tt := range []struct{ name, user, pass string }{
		{"wrong password", "alice", "wrong password"},
		{"unknown user", "nobody", "wrong password"},
		{"unknown user, overlong password", "nobody", strings.Repeat("x", 100)},
		{"right password", "alice", "correct horse"},
	} {
		before := cmp.n.Load()
		s.Login(context.Background(), "ip-"+tt.name, tt.user, tt.pass)
		if got := cmp.n.Load() - before; got != 1 {
			t.Errorf("%s: %d bcrypt comparisons, want 1", tt.name, got)
		}
	}
}

func TestLoginThrottleRefusesThePairNotTheOwner(t *testing.T) {
	var cmp countingCompare
	s, _, clk := newService(t, Config{Compare: cmp.compare})
	s.Register("bob", "correct horse", store.RoleUser)
	ctx := context.Background()
	for i := range 6 {
		if _, err := s.Login(ctx, "1.2.3.4", "bob", "nope"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	// The guesser's address is refused, even the right password, without
	// a bcrypt comparison.
	before := cmp.n.Load()
	_, err := s.Login(ctx, "1.2.3.4", "bob", "correct horse")
	var te *ThrottledError
	if !errors.As(err, &te) || te.RetryAfter <= 0 || te.Scope != ScopePair {
		t.Fatalf("login from the guessing address = %v", err)
	}
	if cmp.n.Load() != before {
		t.Fatal("a throttled attempt was hashed")
	}
	// The owner, elsewhere, is not locked out.
	if _, err := s.Login(ctx, "5.6.7.8", "bob", "correct horse"); err != nil {
		t.Fatalf("owner from another address = %v", err)
	}
	clk.Advance(te.RetryAfter)
	if _, err := s.Login(ctx, "1.2.3.4", "bob", "correct horse"); err != nil {
		t.Fatalf("login after waiting = %v", err)
	}
}

func TestUsernameOverBudgetSlowsCleanAddressesOnly(t *testing.T) {
	var slept []time.Duration
	var mu sync.Mutex
	s, _, _ := newService(t, Config{
		Throttle: LoginThrottleConfig{Username: ThrottleConfig{FreeFailures: 4}},
		Sleep: func(_ context.Context, d time.Duration) error {
			mu.Lock()
			slept = append(slept, d)
			mu.Unlock()
			return nil
		},
	})
	s.Register("root", "correct horse", store.RoleUser)
	ctx := context.Background()
	// Four addresses fail once each: the username is at its budget.
	for i := range 4 {
		if _, err := s.Login(ctx, fmt.Sprintf("10.0.0.%d", i), "root", "guess"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatal(err)
		}
	}
	// An address that failed for root now waits after every failure.
	if _, err := s.Login(ctx, "10.0.0.0", "root", "correct horse"); !errors.As(err, new(*ThrottledError)) {
		t.Fatalf("failed address over budget = %v, want throttled", err)
	}
	// A clean address is slowed, not refused.
	if _, err := s.Login(ctx, "192.0.2.9", "root", "correct horse"); err != nil {
		t.Fatalf("clean address = %v", err)
	}
	if len(slept) != 1 || slept[0] <= 0 || slept[0] > 2*time.Second {
		t.Fatalf("slept %v, want one delay of at most 2s", slept)
	}
	if st := s.LoginStats(); st.Slowed != 1 || st.RefusedPair != 1 || st.Failed != 4 || st.Succeeded != 1 || st.InFlight != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestAddressBudgetSpansUsernames(t *testing.T) {
	s, _, _ := newService(t, Config{Throttle: LoginThrottleConfig{Address: ThrottleConfig{FreeFailures: 10}}})
	ctx := context.Background()
	for i := range 11 {
		if _, err := s.Login(ctx, "198.51.100.7", fmt.Sprintf("user%d", i), "guess"); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	var te *ThrottledError
	if _, err := s.Login(ctx, "198.51.100.7", "user99", "guess"); !errors.As(err, &te) || te.Scope != ScopeAddress {
		t.Fatalf("12th username from one address = %v, want address throttle", err)
	}
}

func TestConcurrentReservationsCountLikeSequentialFailures(t *testing.T) {
	clk := newClock()
	th := NewThrottle(ThrottleConfig{FreeFailures: 5}, nil, "test", clk.Now)
	var wg sync.WaitGroup
	var admitted atomic.Int64
	var res sync.Map
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, err := th.Reserve("k"); err == nil {
				admitted.Add(1)
				res.Store(i, r)
			}
		}()
	}
	wg.Wait()
	if admitted.Load() != 6 {
		t.Fatalf("%d of 100 concurrent attempts admitted, want 6 (5 free + 1)", admitted.Load())
	}
	res.Range(func(_, r any) bool { r.(*Reservation).Fail(); return true })
	if _, err := th.Reserve("k"); err == nil {
		t.Fatal("admitted right after 6 failures")
	}
}

func TestThrottleBackOffDoublesAndIsBounded(t *testing.T) {
	clk := newClock()
	store := NewMemoryCounters(100)
	th := NewThrottle(ThrottleConfig{}, store, "test", clk.Now)
	var waits []time.Duration
	for range 9 {
		r, err := th.Reserve("k")
		var te *ThrottledError
		switch {
		case errors.As(err, &te):
			waits = append(waits, te.RetryAfter)
			clk.Advance(te.RetryAfter)
			r, err = th.Reserve("k")
			if err != nil {
				t.Fatal(err)
			}
		case err != nil:
			t.Fatal(err)
		default:
			waits = append(waits, 0)
		}
		r.Fail()
	}
	want := []time.Duration{0, 0, 0, 0, 0, 0, time.Second, 2 * time.Second, 4 * time.Second}
	if fmt.Sprint(waits) != fmt.Sprint(want) {
		t.Fatalf("waits = %v, want %v", waits, want)
	}
	for i := range 1000 {
		r, _ := th.Reserve(fmt.Sprintf("other%d", i))
		r.Fail()
	}
	if store.Len() > 100 {
		t.Fatalf("store holds %d keys, bound is 100", store.Len())
	}
	clk.Advance(time.Hour)
	if _, err := th.Reserve("other999"); err != nil {
		t.Fatal("key not forgotten")
	}
}

func TestBudgetBoundsUsesPerWindow(t *testing.T) {
	clk := newClock()
	b := NewBudget(BudgetConfig{Max: 3, Window: time.Hour}, nil, "signups", clk.Now)
	var wg sync.WaitGroup
	var admitted atomic.Int64
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r, err := b.Reserve("a"); err == nil {
				admitted.Add(1)
				r.Fail()
			}
		}()
	}
	wg.Wait()
	if admitted.Load() != 3 {
		t.Fatalf("%d of 20 concurrent uses admitted, want 3", admitted.Load())
	}
	r, err := b.Reserve("b")
	if err != nil {
		t.Fatal(err)
	}
	r.Release() // given back: does not count
	for range 3 {
		if _, err := b.Reserve("b"); err != nil {
			t.Fatalf("released use was counted: %v", err)
		}
	}
	clk.Advance(time.Hour)
	if _, err := b.Reserve("a"); err != nil {
		t.Fatalf("new window: %v", err)
	}
}

func TestLoadKeyMovesTheStoredKeyToAKeyFile(t *testing.T) {
	_, db, _ := newService(t, Config{})
	stored, err := db.EnsureJWTKey(func() ([]byte, error) { return []byte(strings.Repeat("s", 32)), nil })
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "jwt.key")
	if _, err := LoadKey(db, "too short", file); !errors.Is(err, ErrShortKey) {
		t.Fatalf("short secret: %v", err)
	}
	k1, err := LoadKey(db, "", file)
	if err != nil || string(k1) != string(stored) {
		t.Fatalf("migrated key = %q, %v; want the stored one", k1, err)
	}
	if k, _ := db.StoredJWTKey(); k != nil {
		t.Fatal("key still in the store")
	}
	fi, err := os.Stat(file)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
	if k2, _ := LoadKey(db, "", file); string(k2) != string(k1) {
		t.Fatal("key changed between loads")
	}
	if err := RotateKeyFile(file); err != nil {
		t.Fatal(err)
	}
	if k3, _ := LoadKey(db, "", file); string(k3) == string(k1) || len(k3) < MinKeyBytes {
		t.Fatal("rotation kept the key")
	}
	fresh := filepath.Join(t.TempDir(), "fresh.key")
	if k, err := LoadKey(db, "", fresh); err != nil || len(k) < MinKeyBytes {
		t.Fatalf("generated key %d bytes, %v", len(k), err)
	}
	secret := strings.Repeat("x", 40)
	if k, _ := LoadKey(db, secret, file); string(k) != secret {
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
