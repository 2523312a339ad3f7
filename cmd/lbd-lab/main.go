// Command lbd-lab runs the demo lab's Kubernetes API: a real etcd and
// kube-apiserver on loopback, from the binaries hack/kube-bins.sh builds.
// It prints the kubeconfig path on stdout once the API is ready and runs
// until SIGTERM or SIGINT, then stops both. scripts/demo.sh drives it.
//
//	lbd-lab -bins DIR -dir DIR
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/lbdproject/lbd/internal/kubetest"
)

func main() {
	bins := flag.String("bins", "", "directory with kube-apiserver and etcd (hack/kube-bins.sh prints it)")
	dir := flag.String("dir", "", "directory for certificates, etcd data and logs")
	flag.Parse()
	if *bins == "" || *dir == "" {
		fmt.Fprintln(os.Stderr, "usage: lbd-lab -bins DIR -dir DIR")
		os.Exit(2)
	}
	c, err := kubetest.Run(*dir, *bins, kubetest.WithServiceClusterIPRange("10.96.0.0/16,fd00::/108"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "lbd-lab: %v\n", err)
		os.Exit(1)
	}
	fmt.Println(c.Kubeconfig)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	if err := c.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "lbd-lab: stopping: %v\n", err)
		os.Exit(1)
	}
}
