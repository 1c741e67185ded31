// Command gen runs gqlgen for the plain gqlgen peer (no plugins); it is what
// `go generate ./...` runs in bench/cmd/gqlpeer/graph.
package main

import (
	"fmt"
	"os"

	"github.com/99designs/gqlgen/api"
	"github.com/99designs/gqlgen/codegen/config"
)

func main() {
	cfg, err := config.LoadConfig("gqlgen.yml")
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen: load gqlgen.yml:", err)
		os.Exit(2)
	}
	if err := api.Generate(cfg); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(3)
	}
}
