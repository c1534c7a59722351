package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"gpt2d/store"
)

func TestAPIKeyAuthenticatesUntilRevoked(t *testing.T) {
	s, db, _ := newService(t, Config{})
	u, _ := s.Register("alice", "correct horse", store.RoleUser)
	key, rec, err := s.CreateAPIKey(u, "laptop", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !IsAPIKey(key) || len(key) != keyLen || !strings.HasPrefix(key, rec.Prefix) || strings.Contains(string(rec.Hash), key) {
		t.Fatalf("key %q, record %+v", key, rec)
	}
	if len(rec.Scopes) != 1 || rec.Scopes[0] != store.ScopeGenerate {
		t.Fatalf("default scopes = %v", rec.Scopes)
	}
	got, k, err := s.AuthenticateKey(key)
	if err != nil || got.ID != u.ID || k.ID != rec.ID {
		t.Fatalf("AuthenticateKey = %v, %v, %v", got, k, err)
	}
	if err := db.DeleteAPIKey(u.ID, rec.ID); err != nil {
		t.Fatal(err)
	}
	wantReason(t, s, key, ReasonUnknownKey)
}

func TestAPIKeyRejected(t *testing.T) {
	tests := []struct {
		name   string
		reason string
		key    func(t *testing.T, s *Service, u *store.User, clk *clock) string
	}{
		{"never issued", ReasonUnknownKey, func(*testing.T, *Service, *store.User, *clock) string {
			return KeyPrefix + strings.Repeat("A", keyLen-len(KeyPrefix))
		}},
		{"truncated", ReasonMalformed, func(t *testing.T, s *Service, u *store.User, _ *clock) string {
			key, _, _ := s.CreateAPIKey(u, "k", nil, nil)
			return key[:len(key)-1]
		}},
		{"one character changed", ReasonUnknownKey, func(t *testing.T, s *Service, u *store.User, _ *clock) string {
			key, _, _ := s.CreateAPIKey(u, "k", nil, nil)
			last := key[len(key)-1]
			return key[:len(key)-1] + string(map[bool]byte{true: 'B', false: 'A'}[last == 'A'])
		}},
		{"expired", ReasonExpired, func(t *testing.T, s *Service, u *store.User, clk *clock) string {
			exp := clk.Now().Add(time.Hour)
			key, _, _ := s.CreateAPIKey(u, "k", nil, &exp)
			clk.Advance(time.Hour)
			return key
		}},
		{"owner disabled", ReasonDisabledUser, func(t *testing.T, s *Service, u *store.User, _ *clock) string {
			key, _, _ := s.CreateAPIKey(u, "k", nil, nil)
			s.Update(u.ID, func(u *store.User) error { u.Disabled = true; return nil })
			return key
		}},
		{"owner deleted", ReasonUnknownKey, func(t *testing.T, s *Service, u *store.User, _ *clock) string {
			key, _, _ := s.CreateAPIKey(u, "k", nil, nil)
			s.db.DeleteUser(u.ID) // takes the user's keys with it
			return key
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, clk := newService(t, Config{})
			u, _ := s.Register("alice", "correct horse", store.RoleUser)
			wantReason(t, s, tt.key(t, s, u, clk), tt.reason)
		})
	}
}

func wantReason(t *testing.T, s *Service, key, reason string) {
	t.Helper()
	u, _, err := s.AuthenticateKey(key)
	var te *TokenError
	if !errors.Is(err, ErrInvalidToken) || !errors.As(err, &te) || te.Reason != reason {
		t.Fatalf("AuthenticateKey = %v, %v; want reason %s", u, err, reason)
	}
}

func TestAPIKeyCarriesAtMostItsOwnersRights(t *testing.T) {
	s, _, _ := newService(t, Config{})
	admin, _ := s.Register("root", "correct horse", store.RoleAdmin)
	user, _ := s.Register("alice", "correct horse", store.RoleUser)
	if _, _, err := s.CreateAPIKey(user, "sneaky", []store.Scope{store.ScopeAdmin}, nil); !errors.Is(err, ErrScopeNotAllowed) {
		t.Fatalf("user created an admin key: %v", err)
	}
	_, adminKey, err := s.CreateAPIKey(admin, "ops", []store.Scope{store.ScopeAdmin, store.ScopeGenerate, store.ScopeAdmin}, nil)
	if err != nil || len(adminKey.Scopes) != 2 {
		t.Fatalf("admin key: %+v, %v", adminKey, err)
	}
	_, genKey, _ := s.CreateAPIKey(admin, "gen", []store.Scope{store.ScopeGenerate}, nil)

	demoted := *admin
	demoted.Role = store.RoleUser
	tests := []struct {
		u     *store.User
		k     *store.APIKey
		scope store.Scope
		want  bool
	}{
		{admin, nil, store.ScopeAdmin, true},
		{user, nil, store.ScopeAdmin, false},
		{user, nil, store.ScopeGenerate, true},
		{admin, adminKey, store.ScopeAdmin, true},
		{admin, genKey, store.ScopeAdmin, false},
		{admin, genKey, store.ScopeGenerate, true},
		{&demoted, adminKey, store.ScopeAdmin, false}, // the owner lost the right
		{nil, nil, store.ScopeGenerate, false},
	}
	for i, tt := range tests {
		if got := Allows(tt.u, tt.k, tt.scope); got != tt.want {
			t.Errorf("case %d: Allows = %v, want %v", i, got, tt.want)
		}
	}
}

func TestBcryptRunsAtMostMaxConcurrentHashes(t *testing.T) {
	s, _, _ := newService(t, Config{MaxConcurrentHashes: 2})
	s.Register("alice", "correct horse", store.RoleUser)
	// Occupy both slots, as two logins hashing would.
	s.hashing <- struct{}{}
	s.hashing <- struct{}{}
	done := make(chan error, 1)
	go func() {
		_, err := s.Login(context.Background(), "127.0.0.1", "alice", "correct horse")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("login hashed while every slot was taken: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	<-s.hashing
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("login never got the freed slot")
	}
}
