// Command gen runs gqlgen with the productfield plugin. It is what
// `go generate ./...` runs; see gqlgen.yml.
package main

import (
	"fmt"
	"os"

	"github.com/99designs/gqlgen/api"
	"github.com/99designs/gqlgen/codegen/config"

	"github.com/kck-go/kck/graph/productfield"
)

func main() {
	cfg, err := config.LoadConfigFromDefaultLocations()
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen: load gqlgen.yml:", err)
		os.Exit(2)
	}
	// Plugin is prepended: its MutateConfig binds the typed mutations'
	// payload types before modelgen would write models for them.
	if err := api.Generate(cfg, api.PrependPlugin(productfield.Plugin{}), api.AddPlugin(productfield.Subscriptions{})); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(3)
	}
}
