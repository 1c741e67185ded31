package cli

import (
	"context"
	"io"
	"log/slog"

	"github.com/kck-go/kck/app"
)

// The tests moved here from the root package main name things as it did.
type serveConfig = serveOptions

func run(args []string, stdout, stderr io.Writer) int { return Run(args, stdout, stderr) }

var splitMemory = app.SplitMemory

// serve runs the gateway until ctx is done, then shuts down gracefully. When
// ready is not nil it receives the bound address once the server listens.
func serve(ctx context.Context, cfg serveConfig, log *slog.Logger, ready chan<- string) error {
	cfg.Logger = log
	a, err := app.Open(ctx, cfg.Config)
	if err != nil {
		return err
	}
	defer a.Close()
	if ready != nil {
		ready <- a.Addr()
	}
	return a.Serve(ctx)
}
