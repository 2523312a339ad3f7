package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadPassword: one reader for `lbd check` and the daemon. Each case
// is a real file on disk, read by ReadPassword (the daemon's call), and
// the same bytes seen by Parse (what `lbd check` runs): both must agree.
func TestReadPassword(t *testing.T) {
	dir := t.TempDir()
	long := strings.Repeat("x", MaxPasswordLen)
	for _, tt := range []struct {
		name, data string
		mode       os.FileMode
		want       string // the password, or "" for an error containing problem
		problem    string
	}{
		{"plain", "s3cret", 0o600, "s3cret", ""},
		{"newline", "s3cret\n", 0o600, "s3cret", ""},
		{"crlf", "s3cret\r\n", 0o600, "s3cret", ""},
		{"80 bytes and a newline", long + "\n", 0o600, long, ""},
		{"80 bytes and crlf", long + "\r\n", 0o600, long, ""},
		{"81 bytes", long + "y", 0o600, "", "more than 80 bytes"},
		{"lone newline", "\n", 0o600, "", "is empty"},
		{"empty", "", 0o600, "", "is empty"},
		{"two lines", "s3cret\nmore\n", 0o600, "", "more than one line"},
		{"two newlines", "s3cret\n\n", 0o600, "", "more than one line"},
		{"group readable", "s3cret\n", 0o640, "", "readable or writable by group or others (mode 0640)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if err := os.WriteFile(path, []byte(tt.data), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil { // past the umask
				t.Fatal(err)
			}
			pw, err := ReadPassword(path)
			switch {
			case tt.want != "" && (err != nil || pw != tt.want):
				t.Errorf("ReadPassword = %q, %v; want %q", pw, err, tt.want)
			case tt.want == "" && (err == nil || !strings.Contains(err.Error(), tt.problem)):
				t.Errorf("ReadPassword = %q, %v; want an error saying %q", pw, err, tt.problem)
			case err != nil && strings.Contains(err.Error(), "s3cret"):
				t.Errorf("the error shows the password: %v", err)
			}
			// lbd check: the same file through Parse.
			o := testOptions
			o.Open = files{strings.TrimPrefix(path, "/"): {Data: []byte(tt.data), Mode: tt.mode}}.open
			c, perr := o.Parse("c.yaml", []byte(peerWithPassword(path)))
			if (perr == nil) != (err == nil) {
				t.Fatalf("lbd check and the daemon disagree: check %v, daemon %v", perr, err)
			}
			if perr == nil && c.BGP.Peers[0].PasswordFingerprint != Fingerprint(pw) {
				t.Errorf("fingerprint %q, want %q", c.BGP.Peers[0].PasswordFingerprint, Fingerprint(pw))
			}
		})
	}
}

func peerWithPassword(file string) string {
	return `version: 1
pools:
  - {name: p, addresses: [192.0.2.16/28]}
bgp:
  asn: 64512
  peers:
    - {name: tor, address: 198.51.100.1, asn: 64501, password_file: "` + file + `"}
  advertisements:
    - {name: b, pools: [p]}
`
}

// TestFingerprintFollowsThePassword: a reload after the password changed is
// a change (config.Equal), and the fingerprint never is the password.
func TestFingerprintFollowsThePassword(t *testing.T) {
	load := func(pw string) *Config {
		o := testOptions
		o.Open = files{"etc/lbd/pw": {Data: []byte(pw + "\n"), Mode: 0o600}}.open
		c, err := o.Parse("c.yaml", []byte(peerWithPassword("/etc/lbd/pw")))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a, b, a2 := load("old-secret"), load("new-secret"), load("old-secret")
	if Equal(a, b) || !Equal(a, a2) {
		t.Errorf("Equal(old, new) = %v, Equal(old, old) = %v", Equal(a, b), Equal(a, a2))
	}
	if fp := a.BGP.Peers[0].PasswordFingerprint; len(fp) != 16 || strings.Contains(fp, "secret") {
		t.Errorf("fingerprint %q", fp)
	}
}

// TestSecretsAndBlobsNotEchoed: a password written where its file belongs
// is never repeated, and a pasted certificate is not echoed whole.
func TestSecretsAndBlobsNotEchoed(t *testing.T) {
	_, err := testOptions.Parse("c.yaml", []byte(peerWithPassword("hunter2-S3cret!")))
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("password written as the file name: %v", err)
	}
	cert := strings.Repeat("MIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJ", 45) // 2.8 KB
	_, err = testOptions.Parse("c.yaml", []byte("version: 1\nkubernetes:\n  kubeconfig: "+cert+"\n"))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatal(err)
	}
	for _, e := range errs {
		if len(e.Error()) > 300 {
			t.Errorf("a %d-byte message echoes the blob: %.120s…", len(e.Error()), e.Error())
		}
	}
	if !strings.Contains(err.Error(), "(2880 bytes)") {
		t.Errorf("the message does not say how long the value was: %v", err)
	}
}
