package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
)

func TestUsernameUniqueUnderConcurrentCreate(t *testing.T) {
	db := openTemp(t)
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Differently cased spellings are the same name.
			name := "carol"
			if i%2 == 1 {
				name = "Carol"
			}
			errs[i] = db.CreateUser(&User{Username: name, Role: RoleUser})
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrUsernameTaken):
			t.Fatalf("unexpected error %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d creations succeeded, want 1", ok)
	}
	if n, _ := db.CountUsers(); n != 1 {
		t.Fatalf("%d users stored", n)
	}
}

func TestUserLookupByIDAndName(t *testing.T) {
	db := openTemp(t)
	u := &User{Username: "Dave", PasswordHash: []byte("h"), Role: RoleUser}
	if err := db.CreateUser(u); err != nil {
		t.Fatal(err)
	}
	if u.ID == 0 {
		t.Fatal("no id assigned")
	}
	byName, err := db.UserByUsername("dave")
	if err != nil || byName.ID != u.ID || byName.Username != "Dave" {
		t.Fatalf("UserByUsername = %+v, %v", byName, err)
	}
	if _, err := db.UserByID(u.ID + 100); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UserByID(unknown) = %v", err)
	}
}

func TestListUsersPaginates(t *testing.T) {
	db := openTemp(t)
	for i := range 5 {
		db.CreateUser(&User{Username: fmt.Sprintf("user%d", i), Role: RoleUser})
	}
	page, err := db.ListUsers(2, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(page) != 2 || page[0].Username != "user2" || page[1].Username != "user3" {
		t.Fatalf("page = %+v", page)
	}
}

func TestLastAdminCannotBeRemoved(t *testing.T) {
	tests := []struct {
		name string
		do   func(db *DB, id uint64) error
	}{
		{"demote", func(db *DB, id uint64) error {
			_, err := db.UpdateUser(id, func(u *User) error { u.Role = RoleUser; return nil })
			return err
		}},
		{"disable", func(db *DB, id uint64) error {
			_, err := db.UpdateUser(id, func(u *User) error { u.Disabled = true; return nil })
			return err
		}},
		{"delete", func(db *DB, id uint64) error { return db.DeleteUser(id) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTemp(t)
			a := &User{Username: "admin1", Role: RoleAdmin}
			db.CreateUser(a)
			if err := tt.do(db, a.ID); !errors.Is(err, ErrLastAdmin) {
				t.Fatalf("removing the only admin = %v, want ErrLastAdmin", err)
			}
			if u, _ := db.UserByID(a.ID); u == nil || !u.activeAdmin() {
				t.Fatalf("admin changed anyway: %+v", u)
			}
			b := &User{Username: "admin2", Role: RoleAdmin}
			db.CreateUser(b)
			if err := tt.do(db, a.ID); err != nil {
				t.Fatalf("with a second admin: %v", err)
			}
			if ok, _ := db.HasAdmin(); !ok {
				t.Fatal("no admin left")
			}
		})
	}
}

func TestDeleteUserFreesUsernameAndTokens(t *testing.T) {
	db := openTemp(t)
	u := &User{Username: "erin", Role: RoleUser}
	db.CreateUser(u)
	db.PutRefreshToken(&RefreshToken{Hash: []byte("h1"), UserID: u.ID, Family: "f", ExpiresAt: farFuture}, 0, now0)
	if err := db.DeleteUser(u.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UserByUsername("erin"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup after delete = %v", err)
	}
	if _, err := db.RotateRefreshToken([]byte("h1"), u.ID, "f", &RefreshToken{Hash: []byte("h2")}, now0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("refresh after delete = %v", err)
	}
	if err := db.CreateUser(&User{Username: "erin", Role: RoleUser}); err != nil {
		t.Fatalf("re-register: %v", err)
	}
}
