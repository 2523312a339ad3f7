// Command lbd-lab runs the demo labs that scripts/demo.sh drives.
//
//	lbd-lab demo -dir DIR -bins DIR -lbd PATH -rbac PATH
//	    As root: the whole product in network namespaces (internal/demo).
//	    It tells the story on stdout, writes DIR/results.json, then writes
//	    DIR/state ("up", or "failed: ..." when a step failed) and keeps the
//	    lab up until SIGTERM or SIGINT, which take it down. A signal during
//	    the story takes it down too.
//	lbd-lab api -dir DIR -bins DIR
//	    Without root: a real etcd and kube-apiserver on loopback. It prints
//	    the kubeconfig path once the API is ready and runs until SIGTERM or
//	    SIGINT.
//	lbd-lab standin NODE
//	    The demo's stand-in for kube-proxy on a node: HTTP on port 80 that
//	    answers NODE.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/lbdproject/lbd/internal/demo"
	"github.com/lbdproject/lbd/internal/kubetest"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	switch os.Args[1] {
	case "demo":
		os.Exit(runDemo(os.Args[2:]))
	case "api":
		os.Exit(runAPI(os.Args[2:]))
	case "standin":
		if len(os.Args) != 3 {
			usage()
		}
		if err := demo.ServeStandIn(os.Args[2]); err != nil {
			fmt.Fprintf(os.Stderr, "lbd-lab standin: %v\n", err)
			os.Exit(1)
		}
	default:
		usage()
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: lbd-lab demo -dir DIR -bins DIR -lbd PATH -rbac PATH\n       lbd-lab api -dir DIR -bins DIR\n       lbd-lab standin NODE")
	os.Exit(2)
}

func runDemo(args []string) int {
	fs := flag.NewFlagSet("demo", flag.ExitOnError)
	dir := fs.String("dir", "", "directory for the lab's files")
	bins := fs.String("bins", "", "directory with kube-apiserver, etcd and kubectl (hack/kube-bins.sh prints it)")
	lbd := fs.String("lbd", "", "the lbd binary")
	rbac := fs.String("rbac", "", "etc/lbd-rbac.yaml")
	fs.Parse(args)
	if *dir == "" || *bins == "" || *lbd == "" || *rbac == "" {
		usage()
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "lbd-lab: %v\n", err)
		return 1
	}
	lbdPath, _ := filepath.Abs(*lbd)
	lab, err := demo.New(demo.Options{Dir: *dir, Bins: *bins, Lbd: lbdPath, RBAC: *rbac,
		StandIn: []string{self, "standin"}, Out: os.Stdout})
	if err != nil {
		fmt.Fprintf(os.Stderr, "lbd-lab: %v\n", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sig
		fmt.Printf("\n%v: taking the lab down\n", s)
		lab.Close()
		os.Exit(1)
	}()
	state := "up\n"
	if err := lab.Run(); err != nil {
		fmt.Printf("\nthe demo failed: %v\nThe lab stays up to look at (logs in %s/logs); ./scripts/demo.sh down removes it.\n", err, *dir)
		state = "failed: " + err.Error() + "\n"
	} else {
		lab.Explore(os.Stdout, lbdPath)
	}
	if err := os.WriteFile(filepath.Join(*dir, "state"), []byte(state), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "lbd-lab: %v\n", err)
	}
	select {} // until a signal
}

func runAPI(args []string) int {
	fs := flag.NewFlagSet("api", flag.ExitOnError)
	bins := fs.String("bins", "", "directory with kube-apiserver and etcd (hack/kube-bins.sh prints it)")
	dir := fs.String("dir", "", "directory for certificates, etcd data and logs")
	fs.Parse(args)
	if *bins == "" || *dir == "" {
		usage()
	}
	c, err := kubetest.Run(*dir, *bins, kubetest.WithServiceClusterIPRange("10.96.0.0/16,fd00::/108"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "lbd-lab: %v\n", err)
		return 1
	}
	fmt.Println(c.Kubeconfig)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "lbd-lab: stopping: %v\n", err)
		return 1
	}
	return 0
}
