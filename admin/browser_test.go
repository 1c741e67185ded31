package admin_test

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/kck-go/kck/internal/browsertest"
	"github.com/kck-go/kck/internal/natstest"
)

// In headless chromium: the console loads nothing from outside and logs no
// console error, its charts draw, a refresh from the page moves the
// product's version, and an invalidation by prefix from gateway A's page
// reaches gateway B, which shares A's store and bus (browser/admin.mjs).
// KCK_ADMIN_SCREENSHOT=path also writes a screenshot (docs/admin.png).
func TestConsoleInChromium(t *testing.T) {
	t.Parallel()
	bus, cluster := natstest.Start(t), natstest.Cluster(t)
	a := newEnv(t, envOpts{bus: bus, cluster: cluster})
	b := newEnv(t, envOpts{noScheduler: true, store: a.store, bus: bus, cluster: cluster})
	for _, k := range []string{"title_list/42", "title_list/43"} {
		require.Equal(t, 200, b.do(t, "GET", "/fetch?key="+k, "").status)
	}
	args := []string{a.url, b.url}
	if p := os.Getenv("KCK_ADMIN_SCREENSHOT"); p != "" {
		args = append(args, p)
	}
	browsertest.Run(t, t.Context(), "admin.mjs", args...)
}

// With auth on, a browser signs in with a kck:admin token and uses the
// console through its cookie (browser/admin-auth.mjs); the action is logged
// with the token's subject.
func TestConsoleSignInChromium(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOpts{auth: true})
	browsertest.Run(t, t.Context(), "admin-auth.mjs", e.url, e.token(t, "ops-7", "kck:admin"))
	lines := e.logs.lines(`msg="admin action"`)
	require.Len(t, lines, 1)
	require.Contains(t, lines[0], "by=sub:ops-7")
}
