package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/lbdproject/lbd/internal/agent"
	"github.com/lbdproject/lbd/internal/allocate"
	"github.com/lbdproject/lbd/internal/config"
	"github.com/lbdproject/lbd/internal/controlplane"
	"github.com/lbdproject/lbd/internal/daemon"
	"github.com/lbdproject/lbd/internal/sink"
	"github.com/lbdproject/lbd/internal/status"
	"github.com/lbdproject/lbd/internal/watch"
)

// cmdRun is the daemon. It validates the file before binding anything, then
// wires the parts top to bottom and runs until SIGTERM or SIGINT.
func cmdRun(args []string, stderr io.Writer) int {
	fs, path := newFlags("run", stderr)
	if err := fs.Parse(args); err != nil {
		return parseFailed(err)
	}

	// 1. Configuration: the same Load as `lbd check`.
	data, err := os.ReadFile(*path)
	if err != nil {
		fmt.Fprintf(stderr, "lbd: %v\n", err)
		return exitUsage
	}
	cfg, err := config.Options{}.Parse(*path, data)
	if err != nil {
		fmt.Fprintf(stderr, "lbd: %s is not valid; not starting:\n%v\n", *path, err)
		return exitInvalid
	}
	hash := config.Hash(data)

	// API connections that a cable pull or firewall killed are noticed in
	// seconds, not 45 (watch.TuneHTTP2).
	watch.TuneHTTP2()

	// 2. Logging and metrics.
	level := new(slog.LevelVar)
	level.Set(daemon.Level(cfg.Log.Level))
	log := daemon.NewLogger(stderr, cfg.Log.Format, level)
	reg := prometheus.NewRegistry()
	buildInfo := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "lbd_build_info",
		Help: "Always 1; labels say which lbd is running.",
	}, []string{"version", "goversion"})
	buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
	reg.MustRegister(buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	// Every goroutine started below is owned here: the deferred Wait
	// returns once each has ended (after ctx is cancelled, which every
	// one of them watches). The cluster's is the one exception: its
	// owner waits at most 5s for it (the API server may hang), see 7.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	// SIGUSR2 is a stop for a restart (systemd's RestartKillSignal): the
	// same, except that BGP routes stay at the routers (graceful restart).
	var restarting atomic.Bool
	usr2 := make(chan os.Signal, 1)
	signal.Notify(usr2, syscall.SIGUSR2)
	defer signal.Stop(usr2)
	wg.Go(func() {
		select {
		case <-usr2:
			restarting.Store(true)
			stop()
		case <-ctx.Done():
		}
	})

	// 3. Health and metrics endpoint. /readyz means lbd works: the
	// configuration is loaded, the API reachable and the informers
	// synced, the agent planning (not frozen), and where configured the
	// BGP sessions opened and the VIP election running. The parts are
	// built below; readiness asks them once started.
	var running atomic.Bool
	var readiness []interface{ Ready() error }
	httpSrv := daemon.NewHTTPServer(log, reg, func() error {
		if !running.Load() {
			return errors.New("starting")
		}
		var why []string
		for _, r := range readiness {
			if err := r.Ready(); err != nil {
				why = append(why, err.Error())
			}
		}
		if len(why) > 0 {
			return errors.New(strings.Join(why, "; "))
		}
		return nil
	})
	if err := httpSrv.Listen(cfg.Listen.HTTP); err != nil {
		log.Error("cannot serve metrics", "err", err)
		return exitInvalid
	}
	defer httpSrv.Close()

	// 4. Address allocation: every node watches the cluster; the holder of
	// the allocator Lease assigns.
	alloc := allocate.New(cfg.Pools, log.With("component", "allocator"), reg)

	// 4a. The control-plane VIP: on nodes with a control_plane section,
	// an election through the local API server.
	cp := controlplane.New(cfg, log, reg)

	// 4b. The node agent decides what this node announces; a sink per
	// mode announces it.
	// With a peers section, liveness comes from the peer detector, which
	// starts once the cluster says this node's address.
	var peerSrc *peerSource
	agOpts := agent.Options{}
	if cfg.Peers != nil {
		peerSrc = newPeerSource(cfg, log)
		agOpts.Peers = peerSrc
	}
	ag, err := agent.New(cfg.Node.Name, cfg, log.With("component", "agent"), reg, agOpts)
	if err != nil {
		log.Error("cannot build the node agent", "err", err)
		return exitInvalid
	}
	l2, err := sink.NewL2(cfg, log, reg, ag.ReportConflict)
	if err != nil {
		log.Error("cannot build the L2 announcer", "err", err)
		return exitInvalid
	}
	ag.AddSink(agent.ModeL2, l2)
	bgp, err := sink.NewBGP(cfg, log, reg)
	if err != nil {
		log.Error("cannot build the BGP speaker", "err", err)
		return exitInvalid
	}
	ag.AddSink(agent.ModeBGP, bgp)
	// BFD starts first and stops last: a restart hands its sessions from
	// this process to the next (bgp.HandOverBFD, ResumeBFD), and the
	// routers must hear from the node within their detection time, before
	// anything else of lbd runs. On a stop it tells the routers AdminDown
	// (bgp.Close), so it outlives ctx.
	bfdCtx, bfdStop := context.WithCancel(context.WithoutCancel(ctx))
	wg.Go(func() { bgp.RunBFD(bfdCtx) })
	handoff := filepath.Join(filepath.Dir(cfg.Listen.Socket), "bfd-handoff.json")
	bgp.ResumeBFD(ctx, handoff)
	defer func() {
		defer bfdStop()
		if !restarting.Load() {
			return
		}
		hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		if err := bgp.HandOverBFD(hctx, handoff); err != nil {
			log.Warn("cannot hand the BFD sessions over to the next process", "component", "bfd", "err", err)
		}
	}()

	// 5. The reloader owns the configuration from here on; subsystems
	// register with it in the order they must be applied.
	reloader := daemon.NewReloader(*path, cfg, hash, log, reg,
		&daemon.Local{HTTP: httpSrv, Level: level},
		alloc,
		ag,
		cp,
	)

	// 5a. When the client certificate lbd authenticates with expires.
	certs := watch.NewCertExpiry(reg)

	// 5b. The configuration file is watched from here on, before the
	// control socket answers: a change made as soon as lbd answers is
	// seen. Run (step 9) reads the events.
	watcher := daemon.NewFileWatcher(*path, daemon.DefaultDebounce, log, func(ctx context.Context) {
		_, _ = reloader.Reload(ctx, "file")
	})
	// A rewritten password file (Vault Agent, the Ansible role) is a
	// reload too: the new password goes to that peer alone.
	watcher.Also = func() []string {
		cfg, _ := reloader.Current()
		return daemon.PasswordFiles(cfg)
	}
	watching := true
	if err := watcher.Start(); err != nil {
		log.Warn("not watching the configuration file; use systemctl reload", "err", err)
		watching = false
	}

	// 6. Control socket for `lbd reload` and `lbd status`; each part
	// reports its own status.
	api := newAPIState(reg)
	reporters := []status.Reporter{api, alloc, cp, ag, bgp}
	readiness = []interface{ Ready() error }{api, ag, bgp, cp}
	started := time.Now()
	ctl, err := daemon.ListenControl(cfg.Listen.Socket, log, func(ctx context.Context, req daemon.Request) daemon.Response {
		resp := handleControl(ctx, req, reloader, started)
		if resp.Status != nil {
			for _, r := range reporters {
				r.Report(ctx, resp.Status)
			}
		}
		return resp
	})
	if err != nil {
		log.Error("cannot open the control socket", "err", err)
		return exitInvalid
	}
	wg.Go(func() { ctl.Serve(ctx) })
	defer ctl.Close()

	// 7. The cluster: informers, this node's liveness Lease and the
	// allocator election. It stops last, releasing the Leases so that
	// another node takes over at once.
	clusterDone := make(chan struct{})
	go func() {
		defer close(clusterDone)
		runCluster(ctx, cfg, log, api, alloc, ag, bgp, certs, peerSrc)
	}()
	defer func() {
		select {
		case <-clusterDone:
		case <-time.After(5 * time.Second):
			log.Warn("leases not released within 5s", "component", "kubernetes")
		}
	}()

	// 7a. The control-plane election; on the way out it hands the VIP over
	// (at most about 0.5s).
	cp.Start(ctx, cfg)
	defer cp.Stop()

	// 7b. BGP sessions open once the agent has planned with this node
	// alive. The agent runs until SIGTERM, then keeps answering for the
	// hand-over grace while the liveness Lease is deleted and the new
	// owners take over; then everything is withdrawn. A planned stop
	// withdraws the BGP routes at once (the router moves traffic to the
	// other nodes); a stop for a restart leaves them to the routers'
	// graceful restart.
	wg.Go(func() { bgp.Start(ctx, ag.Planned()) })
	bgpClosed := make(chan struct{})
	wg.Go(func() {
		defer close(bgpClosed)
		<-ctx.Done()
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
		defer cancel()
		if restarting.Load() {
			bgp.Abandon(cctx)
			return
		}
		if err := bgp.Close(cctx); err != nil {
			log.Warn("BGP speaker did not close cleanly", "component", "bgp", "err", err)
		}
	})
	agentDone := make(chan struct{})
	wg.Go(func() {
		defer close(agentDone)
		ag.Run(ctx)
		<-bgpClosed
		if err := l2.Close(); err != nil {
			log.Warn("L2 announcer did not close cleanly", "component", "l2", "err", err)
		}
	})
	defer func() { <-agentDone }()

	// 8. systemd: READY, a one-line STATUS, and the watchdog fed from the
	// reloader's loop (every 10s for STATUS when there is no watchdog).
	sd := daemon.NewSystemd(log)
	statusLine := func() string {
		_, h := reloader.Current()
		role := "following"
		if alloc.Leading() {
			role = "leading"
		}
		line := fmt.Sprintf("config %s (last reload: %s); kubernetes %s; allocator %s", h, reloader.Last().Outcome, api.get(), role)
		if r := cp.Role(); r != "" {
			line += "; control plane: " + r
		}
		return line
	}
	beat := sd.WatchdogInterval()
	if beat == 0 {
		beat = 10 * time.Second
	}
	reloader.SetHeartbeat(beat, func() {
		sd.Watchdog()
		sd.Status(statusLine())
	})

	// 9. Reload triggers: file changes (watched since 5b) and SIGHUP.
	if watching {
		wg.Go(func() { _ = watcher.Run(ctx) }) // started: no error left to return
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				sd.Reloading() // for Type=notify-reload, which sends SIGHUP
				_, _ = reloader.Reload(ctx, "signal")
				sd.Reloaded(statusLine())
			}
		}
	})

	running.Store(true)
	log.Info("lbd started", "version", version, "file", *path, "hash", hash, "summary", cfg.Summary())
	daemon.LogWarnings(log, cfg)
	sd.Ready(statusLine())
	reloader.Run(ctx)
	sd.Stopping()
	log.Info("lbd stopping")
	return exitOK
}

// stopTimeout bounds the withdrawal of the BGP routes on a planned stop,
// inside the unit's TimeoutStopSec (30s).
const stopTimeout = 10 * time.Second

// handleControl answers one control-socket request.
func handleControl(ctx context.Context, req daemon.Request, r *daemon.Reloader, started time.Time) daemon.Response {
	switch req.Command {
	case "reload":
		res, err := r.Reload(ctx, "socket")
		switch {
		case err != nil:
			return daemon.Response{Error: "daemon is stopping: " + err.Error()}
		case res.Err != nil:
			return daemon.Response{Error: res.Err.Error()}
		case res.Outcome == daemon.OutcomeUnchanged:
			return daemon.Response{OK: true, Message: "configuration unchanged (hash " + res.Hash + ")"}
		}
		cfg, _ := r.Current()
		return daemon.Response{OK: true, Message: "configuration applied (hash " + res.Hash + "): " + cfg.Summary()}
	case "dry-run":
		p, err := r.DryRun(ctx)
		switch {
		case err != nil:
			return daemon.Response{Error: "daemon is stopping: " + err.Error()}
		case p.Err != nil:
			return daemon.Response{Error: p.Err.Error()}
		case len(p.Changed) == 0:
			return daemon.Response{OK: true, Message: "would change nothing (hash " + p.Hash + ")"}
		}
		var msg strings.Builder
		fmt.Fprintf(&msg, "would apply hash %s; changed: %s", p.Hash, strings.Join(p.Changed, ", "))
		for _, e := range p.Effects {
			msg.WriteString("\n  " + e)
		}
		return daemon.Response{OK: true, Message: msg.String()}
	case "status":
		cfg, hash := r.Current()
		last := r.Last()
		st := &status.Status{
			Version: version,
			Node:    cfg.Node.Name,
			PID:     os.Getpid(),
			Started: started,
			Config:  status.Config{File: cfg.Path, Hash: hash, Summary: cfg.Summary()},
			LastReload: status.Reload{
				At: last.At, Source: last.Source, Result: last.Outcome,
			},
		}
		if last.Err != nil {
			st.LastReload.Error = last.Err.Error()
		}
		return daemon.Response{OK: true, Status: st}
	}
	return daemon.Response{Error: fmt.Sprintf("unknown command %q", req.Command)}
}
