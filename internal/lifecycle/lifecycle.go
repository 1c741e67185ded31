// Package lifecycle is the one shape every long-lived part of a gateway
// has (the cache, the scheduler, the console, the late Cassandra store, the
// election): it owns the goroutines it starts, starts each through its
// Group -- never once Close has begun -- and Close cancels their context
// and waits for every one of them, so that what they use (the store, the
// bus) is closed after them, never under them.
package lifecycle

import (
	"context"
	"sync"
)

// Group owns goroutines. The zero value is not usable: make one with New.
type Group struct {
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	closing bool
	wg      sync.WaitGroup
}

// New returns an open group.
func New() *Group {
	ctx, cancel := context.WithCancel(context.Background())
	return &Group{ctx: ctx, cancel: cancel}
}

// Context is done once Close has begun: the parent of the group's work.
func (g *Group) Context() context.Context { return g.ctx }

// Go runs f in a goroutine the group owns and waits for at Close, with the
// group's context. It reports false, and does not run f, once Close has
// begun.
func (g *Group) Go(f func(ctx context.Context)) bool {
	if !g.Enter() {
		return false
	}
	go func() {
		defer g.Leave()
		f(g.ctx)
	}()
	return true
}

// Enter counts work on the caller's goroutine (or one it is about to
// start) that Close must wait for; Leave ends it. It reports false once
// Close has begun, and then the work must not start.
func (g *Group) Enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.wg.Add(1)
	return true
}

// Leave ends work counted by Enter.
func (g *Group) Leave() { g.wg.Done() }

// Bind returns ctx (usually one made without cancellation, for work that
// outlives its caller) cancelled as well when the group closes, and the
// function that releases the link.
func (g *Group) Bind(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(g.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

// Cancel cancels the group's context -- its work should end -- without
// waiting, and without refusing more work (a component that drains first,
// then closes: see the scheduler's Stop). Close waits.
func (g *Group) Cancel() { g.cancel() }

// Closing reports whether the group's context is cancelled (Cancel or
// Close).
func (g *Group) Closing() bool { return g.ctx.Err() != nil }

// Close cancels the group's context and waits for every goroutine and
// piece of work it counted. It may be called more than once.
func (g *Group) Close() {
	g.mu.Lock()
	g.closing = true
	g.mu.Unlock()
	g.cancel()
	g.wg.Wait()
}
