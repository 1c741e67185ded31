// Command kck is the KCK gateway: data products served over GraphQL from a
// two-tier cache. `go run .` starts it with the demo products on the
// embedded store; `kck help` lists the subcommands (package cli), and
// package app is the gateway for a program of its own.
package main

import (
	"os"

	"github.com/kck-go/kck/cli"
)

func main() {
	os.Exit(cli.Run(os.Args[1:], os.Stdout, os.Stderr))
}
