package daemon

import (
	"log/slog"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
)

// Systemd tells systemd how the daemon is doing through sd_notify: READY
// once it serves, STATUS with a one-line summary, WATCHDOG from the main
// loop, STOPPING on the way out. Outside systemd every call does nothing.
type Systemd struct {
	log      *slog.Logger
	watchdog time.Duration
}

// NewSystemd reads NOTIFY_SOCKET and WATCHDOG_USEC from the environment.
func NewSystemd(log *slog.Logger) *Systemd {
	s := &Systemd{log: log}
	if d, err := sd.SdWatchdogEnabled(false); err == nil && d > 0 {
		s.watchdog = d
	}
	return s
}

// WatchdogInterval is how often Watchdog must be called (half the
// configured timeout), or 0 when systemd set no watchdog.
func (s *Systemd) WatchdogInterval() time.Duration { return s.watchdog / 2 }

// Ready says the daemon is up, with a status line.
func (s *Systemd) Ready(status string) { s.notify("READY=1\nSTATUS=" + status) }

// Status updates the line `systemctl status lbd` shows.
func (s *Systemd) Status(status string) { s.notify("STATUS=" + status) }

// Watchdog says the main loop is alive.
func (s *Systemd) Watchdog() { s.notify(sd.SdNotifyWatchdog) }

// Stopping says the daemon is shutting down.
func (s *Systemd) Stopping() { s.notify(sd.SdNotifyStopping) }

// Reloading and Reloaded bracket a reload, for Type=notify-reload.
func (s *Systemd) Reloading() {
	s.notify(sd.SdNotifyReloading + "\nMONOTONIC_USEC=" + monotonicUsec())
}

// Reloaded ends a reload.
func (s *Systemd) Reloaded(status string) { s.notify("READY=1\nSTATUS=" + status) }

func (s *Systemd) notify(state string) {
	if _, err := sd.SdNotify(false, state); err != nil {
		s.log.Debug("sd_notify failed", "err", err)
	}
}
