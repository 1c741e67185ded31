// Package cli is the kck command: its subcommands, each with its flags,
// over package app. The command table declares every command's flags; the
// config file and the KCK_* variables are read through those declarations.
package cli

import (
	"fmt"
	"io"
)

// command is a subcommand: run runs it, and flags declares its flags
// (run declares them the same way), so that a config file knows every
// command's settings without running any.
type command struct {
	name, summary string
	run           func(args []string, stdout, stderr io.Writer) int
	flags         func(f *flags)
}

// commands is the command table. A function, not a variable: the config
// file reads it from inside the commands.
func commands() []command {
	return []command{
		{"serve", "start the gateway (the default)", runServe, func(f *flags) { serveFlags(f) }},
		{"migrate", "create the Cassandra keyspace and tables, install Postgres change triggers", runMigrate, func(f *flags) { migrateFlags(f) }},
		{"demo", "demo load: put the demo dataset into Postgres", runDemo, func(f *flags) { demoFlags(f) }},
		{"check", "check SQL products against the database and the GraphQL schema", runCheck, func(f *flags) { checkFlags(f) }},
		{"warm", "compute the keys products declare to warm, as a gateway does at boot", runWarm, func(f *flags) { warmFlags(f) }},
		{"refresh", "recompute products by key now, or queue them (--queue)", runRefresh, func(f *flags) { refreshFlags(f) }},
		{"invalidate", "remove products by key; the next read recomputes them", runInvalidate, func(f *flags) { keysFlags(f) }},
		{"queue", "the refresh queue: depth, next keys, poisoned keys; retry, remove, enqueue", runQueue, func(f *flags) { queueFlags(f) }},
		{"dump", "write every stored product entry as JSON lines", runDump, func(f *flags) { dumpFlags(f) }},
		{"load", "put the entries of a dump back into a store", runLoad, func(f *flags) { loadFlags(f) }},
		{"schema", "print the GraphQL schema the gateway serves (SDL), for client code generators", runSchema, func(*flags) {}},
		{"token", "mint an HS256 token with the configured secret, for trying auth", runToken, func(f *flags) { tokenFlags(f) }},
		{"schema", "print the GraphQL schema the gateway serves, as SDL", runSchema, func(*flags) {}},
	}
}

// Run runs the kck command line (without the program name) and returns
// its exit code: 0 done, 1 failed, 2 usage error.
func Run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || (len(args[0]) > 0 && args[0][0] == '-' && args[0] != "-h" && args[0] != "--help") {
		return runServe(args, stdout, stderr)
	}
	name := args[0]
	if name == "help" || name == "-h" || name == "--help" {
		usage(stdout)
		return 0
	}
	for _, c := range commands() {
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
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'kck COMMAND --help' for a command's flags. Every flag can also be set by its KCK_* environment variable.")
}
