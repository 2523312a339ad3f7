package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// MaxPasswordLen is the longest TCP MD5 key Linux takes
// (TCP_MD5SIG_MAXKEYLEN).
const MaxPasswordLen = 80

// ReadPassword reads the TCP MD5 password in the file name: the one
// implementation behind `lbd check`, the daemon's start and every reload,
// so they never disagree. The file must be a regular file that neither
// group nor others may read or write, holding one line: the password,
// optionally ended by a newline ("\n" or "\r\n"). Errors never include
// the password.
func ReadPassword(name string) (string, error) {
	return readPassword(func(name string) (fs.File, error) { return os.Open(name) }, name)
}

func readPassword(open func(string) (fs.File, error), name string) (string, error) {
	f, err := open(name)
	if err != nil {
		return "", fmt.Errorf("cannot be read: %s (the password file must exist before lbd starts; e.g. written by Vault Agent)", trimPathErr(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("cannot be read: %s", trimPathErr(err))
	}
	switch {
	case !fi.Mode().IsRegular():
		return "", errors.New("is not a regular file")
	case fi.Mode().Perm()&0o077 != 0:
		return "", fmt.Errorf("is readable or writable by group or others (mode %04o); run chmod 600 %s", fi.Mode().Perm(), name)
	}
	// The password, a CR and an LF, and one byte more to see a longer file.
	data, err := io.ReadAll(io.LimitReader(f, MaxPasswordLen+3))
	if err != nil {
		return "", fmt.Errorf("cannot be read: %s", trimPathErr(err))
	}
	pw := bytes.TrimSuffix(data, []byte("\n"))
	pw = bytes.TrimSuffix(pw, []byte("\r"))
	switch {
	case len(pw) == 0:
		return "", errors.New("is empty (or holds only a newline); it must hold the TCP MD5 password")
	case len(pw) > MaxPasswordLen:
		return "", fmt.Errorf("holds more than %d bytes; a TCP MD5 password is at most %d", MaxPasswordLen, MaxPasswordLen)
	case bytes.ContainsAny(pw, "\r\n\x00"):
		return "", errors.New("holds more than one line (or a NUL byte); it must hold the password alone, optionally followed by a newline")
	}
	return string(pw), nil
}

// Fingerprint identifies a secret without revealing it, for `lbd status`
// and to tell whether a password changed: the first 8 bytes of its
// SHA-256, in hex.
func Fingerprint(secret string) string {
	sum := sha256.Sum256([]byte("lbd password fingerprint\x00" + secret))
	return hex.EncodeToString(sum[:8])
}
