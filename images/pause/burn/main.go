// Command burn keeps N threads busy on the CPU until it is stopped (SIGTERM or SIGINT, exit
// 0): `burn 3`. The lab's pause image carries it so that a lab pod can load its node the way
// a runaway workload does, for the lab test of cloud58-overload (images/pause/README.md).
package main

import (
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
)

func spin() {
	n := uint64(0)
	for {
		n++
	}
}

func main() {
	threads := 1
	if len(os.Args) > 1 {
		parsed, err := strconv.Atoi(os.Args[1])
		if err != nil || parsed < 1 || parsed > 256 {
			os.Stderr.WriteString("burn: the number of threads must be 1 to 256, got " + strconv.Quote(os.Args[1]) + "\n")
			os.Exit(2)
		}
		threads = parsed
	}
	// One OS thread per spinner, and one more for the signal handler.
	runtime.GOMAXPROCS(threads + 1)
	for i := 0; i < threads; i++ {
		go spin()
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	os.Exit(0)
}
