package crypto

import "testing"

// Test vectors from FIPS 180-2.
var vectors = []struct{ in, sha1 string }{
	{"abc", "a9993e364706816aba3e25717850c26c9cd0d89d"},
	{"", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
}

func TestPasswordIsNotLogged(t *testing.T) {
	password := "correct horse battery staple"
	token := newToken(t)
	if token == "" || password == "" {
		t.Fatal("empty")
	}
}

const testAPIKey = "test-api-key-for-unit-tests-only"
