package config

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ReadPeerKey reads the peers' shared key from the file name: the one
// implementation behind `lbd check` and the daemon's start. The file must
// be a regular file that neither group nor others may read or write,
// holding the key in standard base64 (16, 24 or 32 bytes: AES-128, -192
// or -256), optionally followed by a newline. Errors never include the
// key.
func ReadPeerKey(name string) ([]byte, error) {
	return readPeerKey(func(name string) (fs.File, error) { return os.Open(name) }, name)
}

func readPeerKey(open func(string) (fs.File, error), name string) ([]byte, error) {
	f, err := open(name)
	if err != nil {
		return nil, fmt.Errorf("cannot be read: %s (make one with: head -c 32 /dev/urandom | base64 > %s; chmod 600 %s; the same on every node)", trimPathErr(err), name, name)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("cannot be read: %s", trimPathErr(err))
	}
	switch {
	case !fi.Mode().IsRegular():
		return nil, errors.New("is not a regular file")
	case fi.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("is readable or writable by group or others (mode %04o); run chmod 600 %s", fi.Mode().Perm(), name)
	}
	data, err := io.ReadAll(io.LimitReader(f, 128))
	if err != nil {
		return nil, fmt.Errorf("cannot be read: %s", trimPathErr(err))
	}
	text := bytes.TrimSpace(data)
	key, err := base64.StdEncoding.DecodeString(string(text))
	switch {
	case len(text) == 0:
		return nil, errors.New("is empty; it must hold the key in base64 (head -c 32 /dev/urandom | base64)")
	case err != nil || len(data) == 128:
		return nil, errors.New("does not hold one base64 key (head -c 32 /dev/urandom | base64)")
	case len(key) != 16 && len(key) != 24 && len(key) != 32:
		return nil, fmt.Errorf("holds a key of %d bytes; it must be 16, 24 or 32 (head -c 32 /dev/urandom | base64)", len(key))
	}
	return key, nil
}

func validatePeers(c *Config, v *validator, o Options) {
	p := c.Peers
	if p == nil {
		return
	}
	switch {
	case p.KeyFile == "":
		v.errorf("peers.key_file", "", "required: the peers' traffic is encrypted and authenticated under a shared key (head -c 32 /dev/urandom | base64 > /etc/lbd/peers.key; chmod 600; the same file on every node)")
	case !filepath.IsAbs(p.KeyFile) || strings.ContainsAny(p.KeyFile, " \t\n"):
		v.errorf("peers.key_file", "", "must be the absolute path of a file holding the key (the value written is not shown: it may be the key itself)")
	case o.Offline:
		v.skipped = append(v.skipped, "the peers' key file (read, private, a base64 key)")
	default:
		key, err := readPeerKey(o.Open, p.KeyFile)
		if err != nil {
			v.errorf("peers.key_file", p.KeyFile, "%v", err)
		} else {
			p.KeyFingerprint = Fingerprint(string(key))
		}
	}
	if p.Address.IsValid() && (p.Address.IsUnspecified() || p.Address.IsMulticast() || p.Address.Zone() != "") {
		v.errorf("peers.address", p.Address.String(), "must be one unicast address of this node (the one the other nodes reach it by)")
	}
	if p.Port == 0 {
		v.errorf("peers.port", "0", "must be a port from 1 to 65535")
	}
	for _, bp := range c.BGP.Peers {
		if bp.Port == p.Port && p.Port == DefaultBGPPort {
			v.errorf("peers.port", strconv.Itoa(int(p.Port)), "is BGP's port")
			break
		}
	}
	if positive(v, "peers.probe_interval", p.ProbeInterval) && atMost(v, "peers.probe_interval", p.ProbeInterval, 5*time.Second) &&
		positive(v, "peers.probe_timeout", p.ProbeTimeout) && p.ProbeTimeout >= p.ProbeInterval {
		v.errorf("peers.probe_timeout", p.ProbeTimeout.String(), "must be less than probe_interval (%s)", p.ProbeInterval)
	}
	if positive(v, "peers.heartbeat_interval", p.HeartbeatInterval) && atMost(v, "peers.heartbeat_duration", p.HeartbeatDuration, 10*time.Minute) &&
		p.HeartbeatDuration < 2*p.HeartbeatInterval {
		v.errorf("peers.heartbeat_duration", p.HeartbeatDuration.String(), "must be at least twice heartbeat_interval (%s), so that one late renewal does not drop this node from the others' count", p.HeartbeatInterval)
	}
	if positive(v, "peers.fallback_after", p.FallbackAfter) && atMost(v, "peers.fallback_after", p.FallbackAfter, time.Minute) &&
		p.FallbackAfter < 4*p.ProbeInterval {
		v.errorf("peers.fallback_after", p.FallbackAfter.String(), "must be at least 4 × probe_interval (%s): the others need that long to drop this node and say so in their Leases", 4*p.ProbeInterval)
	}
}
