// Command bgphelper runs the BGP speaker for the privileged lab tests of
// package bgp, inside a network namespace (ip netns exec NS bgphelper -c
// FILE). It loads FILE with the daemon's own loader and applies its bgp
// section (every peer; node selectors are the agent's business). Each
// line on stdin is a command, answered with one line, "ok" or
// "error: ...":
//
//	{"routes": [{"prefix": "198.51.100.10/32", "peers": ["tor"], ...}]}
//	{"reload": true}     re-read FILE and apply it
//	{"status": true}     answers with the Status as JSON instead of "ok"
//
// SIGTERM (or the end of stdin) is a planned stop: Close withdraws the
// routes, then ends the sessions. SIGUSR2 is a restart: Abandon, then
// exit, leaving the routes to the routers' graceful restart. SIGKILL is a
// crash.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/lbdproject/lbd/internal/bgp"
	"github.com/lbdproject/lbd/internal/config"
)

type route struct {
	Prefix           netip.Prefix            `json:"prefix"`
	LocalPref        *uint32                 `json:"local_pref"`
	Communities      []config.Community      `json:"communities"`
	LargeCommunities []config.LargeCommunity `json:"large_communities"`
	Peers            []string                `json:"peers"`
}

type command struct {
	Routes *[]route `json:"routes"`
	Reload bool     `json:"reload"`
	Status bool     `json:"status"`
}

func main() {
	file := flag.String("c", "", "lbd configuration file")
	first := flag.Bool("first", false, "handle the first command on stdin (the routes) before opening any session, as lbd run does after a restart: the routes are in place before End-of-RIB")
	flag.Parse()
	if err := run(*file, *first); err != nil {
		fmt.Fprintln(os.Stderr, "bgphelper:", err)
		os.Exit(1)
	}
}

func load(file string) (bgp.Config, error) {
	cfg, err := config.Load(file)
	if err != nil {
		return bgp.Config{}, err
	}
	return bgp.Config{ASN: cfg.BGP.ASN, RouterID: cfg.BGP.RouterID, Peers: cfg.BGP.Peers}, nil
}

func run(file string, first bool) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	cfg, err := load(file)
	if err != nil {
		return err
	}
	s, err := bgp.New(log, nil)
	if err != nil {
		return err
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 16<<20)
	if first {
		// The speaker without its peers, the routes, then the peers.
		global := cfg
		global.Peers = nil
		if err := s.Configure(context.Background(), global); err != nil {
			return err
		}
		if !in.Scan() {
			return fmt.Errorf("-first: no command on stdin")
		}
		fmt.Println(handle(s, file, in.Bytes()))
	}
	if err := s.Configure(context.Background(), cfg); err != nil {
		return err
	}
	fmt.Println("started")

	lines := make(chan []byte)
	go func() {
		for in.Scan() {
			lines <- append([]byte(nil), in.Bytes()...)
		}
		close(lines)
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR2)
	for {
		select {
		case got := <-sig:
			if got == syscall.SIGUSR2 {
				s.Abandon()
				return nil
			}
			return s.Close(context.Background())
		case line, ok := <-lines:
			if !ok {
				return s.Close(context.Background())
			}
			fmt.Println(handle(s, file, line))
		}
	}
}

func handle(s *bgp.Speaker, file string, line []byte) string {
	var c command
	if err := json.Unmarshal(line, &c); err != nil {
		return "error: " + err.Error()
	}
	switch {
	case c.Routes != nil:
		rs := make([]bgp.Route, len(*c.Routes))
		for i, r := range *c.Routes {
			rs[i] = bgp.Route{Prefix: r.Prefix, LocalPref: r.LocalPref, Communities: r.Communities, LargeCommunities: r.LargeCommunities, Peers: r.Peers}
		}
		if err := s.Set(context.Background(), rs); err != nil {
			return "error: " + err.Error()
		}
	case c.Reload:
		cfg, err := load(file)
		if err != nil {
			return "error: " + err.Error()
		}
		if err := s.Configure(context.Background(), cfg); err != nil {
			return "error: " + err.Error()
		}
	case c.Status:
		b, _ := json.Marshal(s.Status(context.Background()))
		return string(b)
	}
	return "ok"
}
