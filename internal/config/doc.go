// Package config is the schema of /etc/lbd.yaml and the one function that
// parses and validates it, Load, shared by the daemon and `lbd check`.
//
// Decoding is strict (an unknown, misspelt or repeated key is an error),
// defaults are applied only to keys the file leaves out, and validation
// rejects rather than repairs: every problem is reported together, each
// naming the file, line, field and value and saying what would be valid.
// The package reads the file and stats password files; it does no other I/O
// and imports nothing from Kubernetes. A *Config is immutable once returned
// and safe to share between goroutines.
package config
