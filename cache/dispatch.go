package cache

import (
	"context"
	"errors"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/tracing"
)

// Dispatching: the one gateway that follows the source tables hands each
// changed key to one gateway of the cluster (Assigner), which refreshes it
// with RefreshChanged and announces the new value on the bus. So a change
// costs one refresh in the cluster however many gateways run, and the
// refreshes are spread over them.

// assignMargin is how much longer than a primer run an assignment may take
// before this gateway refreshes the key itself.
const assignMargin = 5 * time.Second

// maxDispatches bounds the assignments out at once: past it, keys wait
// (folded per key) until one returns.
const maxDispatches = 256

// dispatch is a key's assignment out, and the changes that came since,
// which one more assignment answers when it returns.
type dispatch struct {
	done  []func(error)
	cause trace.SpanContext // what asked for the assignment out (its trace links to it)
	// again: asked again while out; next asked, nextCause and nextDone
	// answer it.
	again     bool
	asked     time.Time
	nextCause trace.SpanContext
	nextDone  []func(error)
}

// Dispatch has key refreshed once in the cluster because a source row it
// is computed from changed at asked, and calls done (when not nil) with
// the outcome: handed to one gateway over the bus when the bus can assign,
// else (no bus, nobody took it, the bus is down) refreshed here. While a
// key's assignment is out, further changes of it are folded into one more
// assignment, sent when it returns: a key has at most one refresh out and
// one waiting, and the run that answers a change started after it.
//
// ctx is not the refresh's: its span, when it has one, is what caused it
// (the follower's reading of the change): each dispatch is a trace of its
// own (kck.dispatch) linked to it, and the refresh, here or on the gateway
// it is handed to, a span of that trace.
func (c *Cache) Dispatch(ctx context.Context, key string, asked time.Time, done func(error)) {
	cause := trace.SpanContextFromContext(ctx)
	a, ok := c.opts.Bus.(Assigner)
	if !ok {
		dctx, span := c.dispatchSpan(key, cause)
		c.RefreshChanged(dctx, key, asked, func(err error) {
			tracing.End(span, err)
			if done != nil {
				done(err)
			}
		})
		return
	}
	c.dispatchMu.Lock()
	if c.life.Closing() {
		c.dispatchMu.Unlock()
		if done != nil {
			done(ErrClosed)
		}
		return
	}
	if d := c.dispatching[key]; d != nil {
		d.again = true
		if asked.After(d.asked) {
			d.asked = asked
		}
		if cause.IsValid() {
			d.nextCause = cause
		}
		if done != nil {
			d.nextDone = append(d.nextDone, done)
		}
		c.dispatchMu.Unlock()
		return
	}
	if !c.life.Enter() {
		c.dispatchMu.Unlock()
		if done != nil {
			done(ErrClosed)
		}
		return
	}
	d := &dispatch{cause: cause}
	if done != nil {
		d.done = []func(error){done}
	}
	c.dispatching[key] = d
	c.dispatchMu.Unlock()
	go func() {
		defer c.life.Leave()
		for {
			err := c.assign(a, key, asked, d.cause)
			c.dispatchMu.Lock()
			finished := d.done
			again := d.again
			if again {
				asked, d.done, d.again, d.nextDone = d.asked, d.nextDone, false, nil
				d.cause, d.nextCause = d.nextCause, trace.SpanContext{}
			} else {
				delete(c.dispatching, key)
			}
			c.dispatchMu.Unlock()
			for _, f := range finished {
				f(err)
			}
			if !again {
				return
			}
		}
	}()
}

// dispatchSpan starts the trace of one dispatch of key, linked to cause.
func (c *Cache) dispatchSpan(key string, cause trace.SpanContext) (context.Context, trace.Span) {
	return tracing.Root(c.life.Context(), c.tracer, "kck.dispatch", cause,
		trace.WithAttributes(tracing.AttrKey.String(key), tracing.AttrTrigger.String(triggerSourceChange)))
}

// assign sends one assignment and waits for its outcome; when nobody takes
// it, this gateway refreshes the key itself.
func (c *Cache) assign(a Assigner, key string, asked time.Time, cause trace.SpanContext) (err error) {
	select {
	case c.dispatchSlots <- struct{}{}:
	case <-c.life.Context().Done():
		return ErrClosed
	}
	defer func() { <-c.dispatchSlots }()
	ctx, span := c.dispatchSpan(key, cause)
	defer func() { tracing.End(span, err) }()
	if c.BusConnected() {
		// The assignee refreshes with no lease wait: its primer run, and a
		// margin, bound it. Past that, nobody took it (a gateway cut off
		// from the bus may still hold its place in the queue group): this
		// gateway refreshes the key itself.
		actx, cancel := context.WithTimeout(ctx, c.opts.PrimerTimeout+assignMargin)
		actx, aspan := c.span(actx, "kck.assign", trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(tracing.AttrKey.String(key)))
		err := a.Assign(actx, key, asked)
		tracing.End(aspan, err)
		cancel()
		c.m.dispatches.WithLabelValues(dispatchOutcome(err)).Inc()
		if !errors.Is(err, ErrNoAssignee) && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if c.life.Closing() {
			return ErrClosed
		}
	} else {
		c.m.dispatches.WithLabelValues("local").Inc()
	}
	done := make(chan error, 1)
	c.RefreshChanged(ctx, key, asked, func(err error) { done <- err })
	return <-done
}

// serveAssignment takes an assignment another gateway handed here: ctx
// carries that gateway's span (the assignment's), the parent of the
// refresh's.
func (c *Cache) serveAssignment(ctx context.Context, key string, asked time.Time, done func(error)) {
	c.RefreshChanged(ctx, key, asked, done)
}

func dispatchOutcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrNoAssignee), errors.Is(err, context.DeadlineExceeded):
		return "local"
	}
	return "failed"
}
