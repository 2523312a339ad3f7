// Package packaging holds no code. Its tests check the files shipped from
// this directory against the real tools and the daemon's own metric names:
// the Prometheus rules with a pinned promtool (check and unit tests), the
// Grafana dashboard, and the Ansible role (ansible-lint, syntax check, and
// as root a real run against a booted Debian container).
package packaging
