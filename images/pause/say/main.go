// Command say prints its arguments, joined by spaces, as one line on standard output, then
// exits 0. The lab's pause image carries it beside pause so that a lab pod can put a line it
// chooses into its container log without any image from a registry (the lab test of the
// container-log shipper).
package main

import (
	"os"
	"strings"
)

func main() {
	os.Stdout.WriteString(strings.Join(os.Args[1:], " ") + "\n")
}
