// Command pause is the process of a pod sandbox: it holds the pod's namespaces open and
// does nothing else. As PID 1 of the pod's PID namespace (when the pod shares one) it
// reaps the children that get re-parented to it, and it exits cleanly on SIGINT/SIGTERM.
//
// cloud58 builds it from this file for the lab (no registry serves the upstream image
// here); production nodes take the pause image from the operator's registry mirror.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
