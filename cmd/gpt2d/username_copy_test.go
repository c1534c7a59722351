package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"gpt2d/store"
	"gpt2d/store/pgtest"
	"gpt2d/store/storetest"
)

// TestStoreCopyCarriesAccountsThatFoldAlike upgrades a bbolt file written
// before usernames were folded with PRECIS, holding "ｂｏｂ" and "Bob" as
// two accounts, with `gpt2d store migrate` (which reports the
// collision), copies it with `gpt2d store copy`, and serves from the
// copy: both accounts log in as themselves, and "bob" cannot register.
func TestStoreCopyCarriesAccountsThatFoldAlike(t *testing.T) {
	data := filepath.Join(t.TempDir(), "gpt2d.db")
	var users []store.User
	for _, u := range []struct{ name, pw string }{{"ｂｏｂ", "fullwidth-password-1"}, {"Bob", "ascii-password-22"}} {
		h, err := bcrypt.GenerateFromPassword([]byte(u.pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, store.User{Username: u.name, Role: store.RoleUser, PasswordHash: h})
	}
	storetest.WriteOldBoltFile(t, data, users)

	out, err := exec.Command(gpt2dBinary(t), "store", "migrate", "--store", data).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "username collision") || !strings.Contains(string(out), "username=Bob") {
		t.Fatalf("store migrate: %v\n%s", err, out)
	}
	url := pgtest.NewDatabase(t)
	out, err = exec.Command(gpt2dBinary(t), "store", "copy", "--from", data, "--to", url).CombinedOutput()
	if err != nil || strings.Contains(string(out), "DIFFERS") {
		t.Fatalf("store copy: %v\n%s", err, out)
	}

	p := replica(t, url)
	for _, c := range []struct{ login, pw, want string }{
		{"ｂｏｂ", "fullwidth-password-1", `"username":"ｂｏｂ"`},
		{"Bob", "ascii-password-22", `"username":"Bob"`},
		{"bob", "ascii-password-22", `"username":"Bob"`},
	} {
		if code, me := p.call(t, "GET", "/users/me", p.token(t, c.login, c.pw), ""); code != 200 || !strings.Contains(me, c.want) {
			t.Errorf("logged in on the copy as %q: /users/me %d %s", c.login, code, me)
		}
	}
	for _, name := range []string{"bob", "ＢＯＢ"} {
		code, body := p.call(t, "POST", "/users", "", `{"username":"`+name+`","password":"a-fresh-password-9"}`)
		if code != 400 || !strings.Contains(body, "Username already registered") {
			t.Errorf("registering %q on the copy: %d %s", name, code, body)
		}
	}
}
