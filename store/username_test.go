package store

import "testing"

func TestIndexUsernamesIsOldestFirst(t *testing.T) {
	for _, c := range []struct {
		name  string
		users []string
		want  []UsernameKeys
	}{
		{"no collision", []string{"alice", "Bob"},
			[]UsernameKeys{{Folded: "alice"}, {Folded: "bob"}}},
		{"older holds the folded name", []string{"ｂｏｂ", "BOB"},
			[]UsernameKeys{{Folded: "bob", Alias: "ｂｏｂ"}, {Alias: "bob", ShadowedBy: 1}}},
		{"three of one name", []string{"bob", "ｂｏｂ", "ＢＯＢ"},
			[]UsernameKeys{{Folded: "bob"}, {Alias: "ｂｏｂ", ShadowedBy: 1}, {ShadowedBy: 1}}},
		{"an alias never takes another account's name", []string{"ix", "İx"},
			[]UsernameKeys{{Folded: "ix"}, {Folded: FoldUsername("İx")}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			users := make([]User, len(c.users))
			for i, n := range c.users {
				users[i] = User{ID: uint64(i + 1), Username: n}
			}
			got := IndexUsernames(users)
			for i := range c.want {
				if got[i] != c.want[i] {
					t.Errorf("%s: %+v, want %+v", c.users[i], got[i], c.want[i])
				}
			}
		})
	}
	if !(UsernameKeys{ShadowedBy: 1}).Unreachable() {
		t.Error("a shadowed account without alias is not reported unreachable")
	}
}
