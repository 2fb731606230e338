// Command say writes its arguments as one line to standard output and exits. It sits beside
// pause in the lab's pause image so that a lab pod can write a known line into its container
// log (the log shipper's test) without an image from a registry.
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	fmt.Println(strings.Join(os.Args[1:], " "))
}
