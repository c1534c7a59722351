package postgres

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"gpt2d/store"
)

// filledBolt returns a bbolt store holding every kind of record,
// including a deleted user (whose id must not be given out again).
func filledBolt(t *testing.T) *store.DB {
	t.Helper()
	src, err := store.Open(filepath.Join(t.TempDir(), "src.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	now := time.Date(2031, 6, 1, 12, 30, 0, 123456789, time.UTC)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.EnsureJWTKey(func() ([]byte, error) { return []byte("0123456789abcdef0123456789abcdef"), nil }); err != nil {
		t.Fatal(err)
	}
	admin := &store.User{Username: "root", PasswordHash: []byte("$2a$04$root"), Role: store.RoleAdmin, CreatedAt: now}
	must(src.CreateUser(admin))
	gone := &store.User{Username: "gone", Role: store.RoleUser, CreatedAt: now}
	must(src.CreateUser(gone))
	rpm := int64(3)
	alice := &store.User{Username: "Alice", PasswordHash: []byte("$2a$04$alice"), Role: store.RoleUser, CreatedAt: now,
		TokensValidAfter: now.Add(time.Millisecond), Limits: &store.Limits{RequestsPerMinute: &rpm}}
	must(src.CreateUser(alice))
	must(src.DeleteUser(gone.ID))
	must(src.CreateAPIKey(&store.APIKey{UserID: alice.ID, Name: "ci", Prefix: "g2d_x", Hash: []byte("key-hash"),
		Scopes: []store.Scope{store.ScopeGenerate}, CreatedAt: now}))
	must(src.TouchAPIKeys(map[uint64]time.Time{1: now.Add(time.Second)}))
	if _, err := src.PutRefreshToken(&store.RefreshToken{Hash: []byte("r1"), UserID: alice.ID, Family: "fam", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, 0, now); err != nil {
		t.Fatal(err)
	}
	if _, err := src.RotateRefreshToken([]byte("r1"), alice.ID, "fam", &store.RefreshToken{Hash: []byte("r2"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}, now); err != nil {
		t.Fatal(err)
	}
	must(src.AppendAudit(&store.Event{Time: now, Action: "user.register", Target: "Alice", IP: "10.0.0.1", Detail: map[string]any{"user_id": 3}}))
	must(src.AddUsage([]store.Usage{{Day: now, UserID: alice.ID, KeyID: 1, Counts: store.Counts{Requests: 2, PromptTokens: 5, CompletionTokens: 7}}}))
	return src
}

func TestImportCopiesEverythingIdempotently(t *testing.T) {
	src := filledBolt(t)
	dst := openTest(t)
	d, err := src.Dump()
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 { // the second import rewrites the same records
		if err := dst.Import(d); err != nil {
			t.Fatalf("import %d: %v", round, err)
		}
		back, err := dst.Dump()
		if err != nil {
			t.Fatal(err)
		}
		want, got := d.Sections(), back.Sections()
		for i := range want {
			if want[i] != got[i] {
				t.Errorf("import %d: %s: source %+v, target %+v", round, want[i].Name, want[i], got[i])
			}
		}
	}
	// The copy works as a store: the same user, key, family, usage, and
	// ids continue past the source's (the deleted user's id included).
	u, err := dst.UserByUsername("alice")
	if err != nil || string(u.PasswordHash) != "$2a$04$alice" || *u.Limits.RequestsPerMinute != 3 {
		t.Fatalf("copied user = %+v, %v", u, err)
	}
	if k, err := dst.APIKeyByHash([]byte("key-hash")); err != nil || k.UserID != u.ID || k.LastUsedAt == nil {
		t.Fatalf("copied key = %+v, %v", k, err)
	}
	if _, err := dst.RotateRefreshToken([]byte("r1"), u.ID, "fam", &store.RefreshToken{Hash: []byte("r3"), ExpiresAt: time.Now().Add(time.Hour)}, time.Now()); !errors.Is(err, store.ErrTokenReused) {
		t.Fatalf("replaying the rotated token after the copy = %v, want reuse detected", err)
	}
	if n, _ := dst.DayTokens(u.ID, time.Date(2031, 6, 1, 0, 0, 0, 0, time.UTC)); n != 12 {
		t.Fatalf("copied usage = %d tokens", n)
	}
	fresh := &store.User{Username: "newcomer", Role: store.RoleUser}
	if err := dst.CreateUser(fresh); err != nil || fresh.ID != 4 {
		t.Fatalf("new user after the copy got id %d (%v), want 4", fresh.ID, err)
	}
	e := &store.Event{Time: time.Now(), Action: "x"}
	if err := dst.AppendAudit(e); err != nil || e.Seq != 2 {
		t.Fatalf("new audit seq %d, %v; want 2", e.Seq, err)
	}
	k, err := dst.EnsureJWTKey(func() ([]byte, error) { return nil, errors.New("generated") })
	if err != nil || string(k) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("jwt key = %q, %v", k, err)
	}
}

func TestImportRefusesClashingRecords(t *testing.T) {
	src := filledBolt(t)
	dst := openTest(t)
	// Another install's "alice" under another id.
	for _, name := range []string{"x1", "x2", "x3", "x4", "alice"} {
		if err := dst.CreateUser(&store.User{Username: name, Role: store.RoleUser}); err != nil {
			t.Fatal(err)
		}
	}
	d, _ := src.Dump()
	if err := dst.Import(d); err == nil {
		t.Fatal("import over a clashing username succeeded")
	}
	if _, err := dst.APIKeyByHash([]byte("key-hash")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed import left records behind: %v", err)
	}
}
