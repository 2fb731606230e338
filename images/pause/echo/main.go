// Command echo stands in for the lab's demo app (apps/echo.yaml), whose image no registry
// serves here. It reads what the rendered Deployment gives the app: it listens on :$PORT
// (8080 when unset, the app's port) and answers every request 200 with one line,
// "$ECHO_MESSAGE from <host name>" (a pod's host name is the pod's name), and on SIGTERM it
// stops taking connections and finishes the requests in flight.
//
// GET /ready is its readiness: 200 "ready", or 503 "not ready" after a PUT /ready with the
// body "no" (a PUT with "yes" makes it ready again; either answers 200 "ready: <body>", any
// other body 400). A lab test turns a running pod not-ready this way, without removing it.
//
// `echo get URL` is its client instead: one GET of URL, then the status and the body on
// standard output; exit 0 on 200, else 1. A lab pod runs it to reach another pod.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "get" {
		os.Exit(get(os.Args[2]))
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	message := os.Getenv("ECHO_MESSAGE")
	host, err := os.Hostname()
	if err != nil {
		host = "unknown"
	}
	var notReady atomic.Bool
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			body, _ := io.ReadAll(io.LimitReader(r.Body, 16))
			switch strings.TrimSpace(string(body)) {
			case "yes":
				notReady.Store(false)
			case "no":
				notReady.Store(true)
			default:
				http.Error(w, "the body is yes or no", http.StatusBadRequest)
				return
			}
			fmt.Fprintf(w, "ready: %s\n", strings.TrimSpace(string(body)))
			return
		}
		if notReady.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/peer", func(w http.ResponseWriter, r *http.Request) {
		// the address the connection came from, as accept() gave it: behind a full-NAT
		// director a local address of that director, or the client's own with TOA
		fmt.Fprintln(w, r.RemoteAddr)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%s from %s\n", message, host)
	})
	server := &http.Server{
		Addr:              ":" + port,
		ReadHeaderTimeout: 5 * time.Second,
		Handler:           mux,
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-stop
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = server.Shutdown(ctx)
	}()
	if err := server.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func get(url string) int {
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	fmt.Printf("%d %s", resp.StatusCode, body)
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}
