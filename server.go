// Command kck is the KCK gateway: data products served over GraphQL from a
// two-tier cache. `go run .` starts it with the demo products on the
// embedded store; `kck help` lists the subcommands.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// commands are the subcommands, one per file (cmd_*.go).
var commands = []struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) int
}{
	{"serve", "start the gateway (the default)", runServe},
	{"migrate", "create the Cassandra keyspace and tables, install Postgres change triggers", runMigrate},
	{"demo", "demo load: put the demo dataset into Postgres", runDemo},
	{"check", "check SQL products against the database and the GraphQL schema", runCheck},
	{"warm", "compute the keys products declare to warm, as a gateway does at boot", runWarm},
	{"refresh", "recompute products by key now, or queue them (--queue)", runRefresh},
	{"invalidate", "remove products by key; the next read recomputes them", runInvalidate},
	{"queue", "the refresh queue: depth, next keys, poisoned keys; retry, remove, enqueue", runQueue},
	{"dump", "write every stored product entry as JSON lines", runDump},
	{"load", "put the entries of a dump back into a store", runLoad},
	{"token", "mint an HS256 token with the configured secret, for trying auth", runToken},
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (len(args[0]) > 0 && args[0][0] == '-' && args[0] != "-h" && args[0] != "--help") {
		return runServe(args, stdout, stderr)
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "kck: unknown command %q\n\n", name)
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: kck [command] [flags]")
	fmt.Fprintln(w, "\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'kck COMMAND --help' for a command's flags. Every flag can also be set by its KCK_* environment variable.")
}
