// Package storetest is the conformance suite of store.Store: one set of
// table-driven cases that every implementation (the bbolt file, the
// PostgreSQL database) must pass, so that no behaviour differs between
// them. Run calls each case with a fresh, empty store.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gpt2d/store"
)

// Opener returns a new, empty store for one test and arranges for it to
// be closed when the test ends.
type Opener func(t *testing.T) store.Store

// Case is one behaviour every store must have.
type Case struct {
	Name string
	Test func(t *testing.T, db store.Store)
}

// Run runs every case of Cases against stores made by open.
func Run(t *testing.T, open Opener) {
	for _, c := range Cases {
		t.Run(c.Name, func(t *testing.T) { c.Test(t, open(t)) })
	}
}

var (
	now0      = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	farFuture = now0.Add(24 * time.Hour)
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustUser(t *testing.T, db store.Store, name string, role store.Role) *store.User {
	t.Helper()
	u := &store.User{Username: name, Role: role, PasswordHash: []byte("$2a$04$hash-of-" + name), CreatedAt: now0}
	must(t, db.CreateUser(u))
	return u
}

// concurrently runs fn(i) for i in [0, n) at once and returns the errors.
func concurrently(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// Cases are the conformance cases, by behaviour.
var Cases = slices.Concat(userCases, usernameCases, keyCases, tokenCases, auditCases, auditPruneCases, usageCases)

var userCases = []Case{
	{"UserRoundTripsExactly", func(t *testing.T, db store.Store) {
		rpm := int64(7)
		u := &store.User{Username: "Dave", PasswordHash: []byte{0, 1, 2, 255}, Role: store.RoleUser,
			CreatedAt:        time.Date(2031, 2, 3, 4, 5, 6, 789123456, time.UTC),
			TokensValidAfter: time.Date(2031, 2, 3, 4, 5, 7, 1000000, time.UTC),
			Limits:           &store.Limits{RequestsPerMinute: &rpm}}
		must(t, db.CreateUser(u))
		if u.ID == 0 {
			t.Fatal("no id assigned")
		}
		for _, get := range []func() (*store.User, error){
			func() (*store.User, error) { return db.UserByID(u.ID) },
			func() (*store.User, error) { return db.UserByUsername("dave") },
			func() (*store.User, error) { return db.UserByUsername("DAVE") },
		} {
			got, err := get()
			if err != nil {
				t.Fatal(err)
			}
			if got.ID != u.ID || got.Username != "Dave" || !bytes.Equal(got.PasswordHash, u.PasswordHash) ||
				!got.CreatedAt.Equal(u.CreatedAt) || !got.TokensValidAfter.Equal(u.TokensValidAfter) ||
				got.Limits == nil || *got.Limits.RequestsPerMinute != 7 || got.Limits.TokensPerDay != nil {
				t.Fatalf("read back %+v, wrote %+v", got, u)
			}
		}
		if _, err := db.UserByID(u.ID + 100); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("UserByID(unknown) = %v", err)
		}
		if _, err := db.UserByUsername("nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("UserByUsername(unknown) = %v", err)
		}
	}},
	{"UsernameUniqueUnderConcurrentCreate", func(t *testing.T, db store.Store) {
		errs := concurrently(20, func(i int) error {
			name := "carol"
			if i%2 == 1 {
				name = "Carol" // differently cased spellings are the same name
			}
			return db.CreateUser(&store.User{Username: name, Role: store.RoleUser})
		})
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrUsernameTaken):
				t.Fatalf("unexpected error %v", err)
			}
		}
		if n, _ := db.CountUsers(); ok != 1 || n != 1 {
			t.Fatalf("%d creations succeeded, %d users stored; want 1, 1", ok, n)
		}
	}},
	{"IDsIncreaseAndAreNotReused", func(t *testing.T, db store.Store) {
		a := mustUser(t, db, "a1", store.RoleUser)
		b := mustUser(t, db, "b1", store.RoleUser)
		must(t, db.DeleteUser(b.ID))
		c := mustUser(t, db, "c1", store.RoleUser)
		if !(a.ID < b.ID && b.ID < c.ID) {
			t.Fatalf("ids %d, %d, %d", a.ID, b.ID, c.ID)
		}
	}},
	{"ListUsersPaginatesInIDOrder", func(t *testing.T, db store.Store) {
		for i := range 5 {
			mustUser(t, db, fmt.Sprintf("user%d", i), store.RoleUser)
		}
		page, err := db.ListUsers(2, 2)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) != 2 || page[0].Username != "user2" || page[1].Username != "user3" {
			t.Fatalf("page = %+v", page)
		}
		if all, _ := db.ListUsers(0, 100); len(all) != 5 {
			t.Fatalf("all = %d users", len(all))
		}
		if none, err := db.ListUsers(10, 5); err != nil || none == nil || len(none) != 0 {
			t.Fatalf("past the end = %#v, %v; want an empty list", none, err)
		}
	}},
	{"UpdateUserAppliesAndReturnsFnError", func(t *testing.T, db store.Store) {
		u := mustUser(t, db, "erin", store.RoleUser)
		tva := time.Date(2032, 1, 1, 0, 0, 0, 123000000, time.UTC)
		got, err := db.UpdateUser(u.ID, func(u *store.User) error {
			u.Role, u.TokensValidAfter, u.PasswordHash = store.RoleAdmin, tva, []byte("new")
			return nil
		})
		if err != nil || got.Role != store.RoleAdmin {
			t.Fatalf("update = %+v, %v", got, err)
		}
		back, _ := db.UserByID(u.ID)
		if back.Role != store.RoleAdmin || !back.TokensValidAfter.Equal(tva) || string(back.PasswordHash) != "new" {
			t.Fatalf("stored %+v", back)
		}
		if ok, _ := db.HasAdmin(); !ok {
			t.Fatal("promoted user is not an admin")
		}
		boom := errors.New("boom")
		if _, err := db.UpdateUser(u.ID, func(u *store.User) error { u.Role = store.RoleUser; return boom }); err != boom {
			t.Fatalf("fn error = %v, want it returned as is", err)
		}
		if back, _ := db.UserByID(u.ID); back.Role != store.RoleAdmin {
			t.Fatal("update stored although fn failed")
		}
		if _, err := db.UpdateUser(u.ID+99, func(*store.User) error { return nil }); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("update unknown = %v", err)
		}
	}},
	{"LastAdminCannotBeRemoved", func(t *testing.T, db store.Store) {
		removals := []struct {
			name string
			do   func(id uint64) error
		}{
			{"demote", func(id uint64) error {
				_, err := db.UpdateUser(id, func(u *store.User) error { u.Role = store.RoleUser; return nil })
				return err
			}},
			{"disable", func(id uint64) error {
				_, err := db.UpdateUser(id, func(u *store.User) error { u.Disabled = true; return nil })
				return err
			}},
			{"delete", func(id uint64) error { return db.DeleteUser(id) }},
		}
		a := mustUser(t, db, "admin0", store.RoleAdmin)
		for i, r := range removals {
			if err := r.do(a.ID); !errors.Is(err, store.ErrLastAdmin) {
				t.Fatalf("%s the only admin = %v, want ErrLastAdmin", r.name, err)
			}
			if u, _ := db.UserByID(a.ID); u == nil || u.Role != store.RoleAdmin || u.Disabled {
				t.Fatalf("%s: admin changed anyway: %+v", r.name, u)
			}
			b := mustUser(t, db, fmt.Sprintf("admin%d", i+1), store.RoleAdmin)
			if err := r.do(a.ID); err != nil {
				t.Fatalf("%s with a second admin: %v", r.name, err)
			}
			if ok, _ := db.HasAdmin(); !ok {
				t.Fatalf("%s: no admin left", r.name)
			}
			a = b
		}
	}},
	{"LastAdminHoldsUnderConcurrentRemovals", func(t *testing.T, db store.Store) {
		// Two admins removed at once, in every combination of ways: one
		// removal may succeed, never both.
		ways := []func(id uint64) error{
			func(id uint64) error {
				_, err := db.UpdateUser(id, func(u *store.User) error { u.Role = store.RoleUser; return nil })
				return err
			},
			func(id uint64) error {
				_, err := db.UpdateUser(id, func(u *store.User) error { u.Disabled = true; return nil })
				return err
			},
			func(id uint64) error { return db.DeleteUser(id) },
		}
		for round := range 9 {
			keep := mustUser(t, db, fmt.Sprintf("keep%d", round), store.RoleAdmin)
			// Make the previous survivors plain users, so that exactly two
			// admins exist: a and b.
			users, _ := db.ListUsers(0, 1000)
			for _, u := range users {
				if u.ID != keep.ID && u.Role == store.RoleAdmin && !u.Disabled {
					if _, err := db.UpdateUser(u.ID, func(u *store.User) error { u.Role = store.RoleUser; return nil }); err != nil {
						t.Fatal(err)
					}
				}
			}
			a := keep
			b := mustUser(t, db, fmt.Sprintf("other%d", round), store.RoleAdmin)
			wa, wb := ways[round%3], ways[round/3]
			errs := concurrently(2, func(i int) error {
				if i == 0 {
					return wa(a.ID)
				}
				return wb(b.ID)
			})
			okN := 0
			for _, err := range errs {
				switch {
				case err == nil:
					okN++
				case !errors.Is(err, store.ErrLastAdmin):
					t.Fatalf("round %d: %v", round, err)
				}
			}
			if has, _ := db.HasAdmin(); okN != 1 || !has {
				t.Fatalf("round %d: %d of 2 concurrent removals succeeded, admin left: %v", round, okN, has)
			}
		}
	}},
	{"DeleteUserFreesUsernameAndRemovesTokensAndKeys", func(t *testing.T, db store.Store) {
		u := mustUser(t, db, "erin", store.RoleUser)
		putToken(t, db, "h1", u.ID, "f", 0)
		must(t, db.CreateAPIKey(&store.APIKey{UserID: u.ID, Name: "k", Hash: []byte("erin-key"), Scopes: []store.Scope{store.ScopeGenerate}}))
		must(t, db.AddUsage([]store.Usage{{Day: now0, UserID: u.ID, Counts: store.Counts{Requests: 1, PromptTokens: 2}}}))
		must(t, db.AppendAudit(&store.Event{Time: now0, Action: "user.register", Target: "erin"}))
		must(t, db.DeleteUser(u.ID))
		if _, err := db.UserByUsername("erin"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("lookup after delete = %v", err)
		}
		if _, err := db.RotateRefreshToken([]byte("h1"), u.ID, "f", &store.RefreshToken{Hash: []byte("h2")}, now0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("refresh after delete = %v", err)
		}
		if _, err := db.APIKeyByHash([]byte("erin-key")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("key after delete = %v", err)
		}
		if n, _ := db.DayTokens(u.ID, now0); n != 2 {
			t.Fatalf("usage of a deleted user = %d tokens, want it kept", n)
		}
		if ev, _ := db.ListAudit(0, 10); len(ev) != 1 {
			t.Fatalf("audit after delete = %+v, want it kept", ev)
		}
		if err := db.DeleteUser(u.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("second delete = %v", err)
		}
		again := mustUser(t, db, "Erin", store.RoleUser)
		if again.ID == u.ID {
			t.Fatal("id reused")
		}
	}},
	{"JWTKeyIsGeneratedOnceAcrossConcurrentCallers", func(t *testing.T, db store.Store) {
		var calls atomic.Int32
		keys := make([][]byte, 8)
		errs := concurrently(8, func(i int) error {
			k, err := db.EnsureJWTKey(func() ([]byte, error) {
				n := calls.Add(1)
				return bytes.Repeat([]byte{byte(n)}, 32), nil
			})
			keys[i] = k
			return err
		})
		for i, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(keys[i], keys[0]) || len(keys[0]) != 32 {
				t.Fatalf("caller %d got another key", i)
			}
		}
		k, _ := db.EnsureJWTKey(func() ([]byte, error) { t.Fatal("generated again"); return nil, nil })
		if !bytes.Equal(k, keys[0]) {
			t.Fatal("key changed")
		}
	}},
	{"StoreIsReachable", func(t *testing.T, db store.Store) {
		if err := db.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		if k := db.Kind(); k != "bbolt" && k != "postgres" {
			t.Fatalf("Kind = %q", k)
		}
	}},
}
