package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/kck-go/kck/apierror"
	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/graph/model"
	"github.com/kck-go/kck/ratelimit"
)

// Subscriptions: the resolvers' half (the WebSocket connection is
// gateway/gqlhttp's). A subscription follows one product key: the current
// value at once, then each new version the cache hears of (cache.Watch:
// this gateway's writes and the cluster's change feed). Between the watch
// and the socket sits one slot: while the socket is slow, newer versions
// replace the pending one, so a subscriber that cannot keep up gets the
// newest value and memory stays bounded.

// The limit names of the subscription bounds (extensions.limit).
const (
	LimitSubscriptions              = "subscriptions"
	LimitSubscriptionsPerConnection = "subscriptions_per_connection"
)

// Conn is one WebSocket connection as the subscription resolvers see it:
// its count of running subscriptions (bounded by
// ResolverOptions.MaxSubscriptionsPerConnection). The transport
// (gateway/gqlhttp) puts one in each connection's context with WithConn. A
// subscription whose context has a Conn is refused, when it does not
// start, with the protocol's error message; one without (over HTTP) with
// the field's error.
type Conn struct {
	mu    sync.Mutex
	count int
}

type connKey struct{}

// WithConn returns ctx carrying c, the connection its subscriptions run on.
func WithConn(ctx context.Context, c *Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

func connFrom(ctx context.Context) *Conn {
	c, _ := ctx.Value(connKey{}).(*Conn)
	return c
}

func newSubscriptions(o ResolverOptions) (*subscriptions, error) {
	s := &subscriptions{
		maxPerConn: o.MaxSubscriptionsPerConnection, maxTotal: o.MaxSubscriptions, readTimeout: o.SubscriptionReadTimeout,
		log: o.Logger, refuse: o.OnRefused, subErr: o.SubscriptionError,
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kck_subscriptions_active", Help: "GraphQL subscriptions running on this gateway.",
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kck_subscription_messages_total", Help: "Product values pushed to subscribers.",
		}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{s.active, s.sent} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("graph: subscription metrics: %w", err)
			}
		}
	}
	return s, nil
}

// subscriptions is the gateway-wide state of subscriptions.
type subscriptions struct {
	// maxPerConn bounds one connection's subscriptions, maxTotal the
	// gateway's (not positive: no bound); readTimeout each read of a
	// product for a subscriber.
	maxPerConn, maxTotal int
	readTimeout          time.Duration
	log                  *slog.Logger
	total                atomic.Int64
	refuse               func(limit string)
	// subErr sends a refused subscription's error as the WebSocket
	// protocol's error message (ResolverOptions.SubscriptionError).
	subErr func(ctx context.Context, err error)

	active prometheus.Gauge
	sent   prometheus.Counter

	// pending holds, per subscription operation, the freshness of the
	// values handed to gqlgen and not yet written, so that each message
	// lists its product in extensions.kck.products like a query's
	// response (gateway/gqlhttp's freshness extension pops them:
	// Resolver.PopRead). At most two per subscription.
	pending sync.Map // *graphql.OperationContext -> *readQueue
}

type readQueue struct {
	mu sync.Mutex
	q  []Read
}

func (s *subscriptions) queue(op *graphql.OperationContext) *readQueue {
	q, _ := s.pending.LoadOrStore(op, &readQueue{})
	return q.(*readQueue)
}

// pushRead notes the freshness of the value about to be sent.
func (q *readQueue) push(r cache.Result) {
	q.mu.Lock()
	q.q = append(q.q, Read{Key: r.Key, Version: r.Version, ComputedAt: r.ComputedAt, Stale: r.Stale, StaleAt: r.StaleAt, ExpiresAt: r.ExpiresAt})
	q.mu.Unlock()
}

// unpush takes back the last push: its value was not taken.
func (q *readQueue) unpush() {
	q.mu.Lock()
	if n := len(q.q); n > 0 {
		q.q = q.q[:n-1]
	}
	q.mu.Unlock()
}

// PopRead returns the freshness of the value of subscription op's next
// message (the transport lists it in the message's extensions.kck.products,
// as a query's response lists what it read), false when there is none.
func (r *Resolver) PopRead(op *graphql.OperationContext) (Read, bool) {
	if r.subs == nil {
		return Read{}, false
	}
	return r.subs.popRead(op)
}

func (s *subscriptions) popRead(op *graphql.OperationContext) (Read, bool) {
	v, ok := s.pending.Load(op)
	if !ok {
		return Read{}, false
	}
	q := v.(*readQueue)
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.q) == 0 {
		return Read{}, false
	}
	rd := q.q[0]
	q.q = q.q[1:]
	return rd, true
}

// acquire takes a subscription slot of the connection and of the gateway.
func (s *subscriptions) acquire(ctx context.Context) (release func(), err error) {
	// The client's budget over time first: a refused start takes no slot.
	if err := ratelimit.AllowFrom(ctx, ratelimit.Subscriptions); err != nil {
		return nil, err
	}
	c := connFrom(ctx)
	if c != nil && s.maxPerConn > 0 {
		c.mu.Lock()
		if c.count >= s.maxPerConn {
			c.mu.Unlock()
			s.refused(LimitSubscriptionsPerConnection)
			return nil, refusal(LimitSubscriptionsPerConnection, s.maxPerConn,
				"this connection already runs %d subscriptions, the most one may", s.maxPerConn)
		}
		c.count++
		c.mu.Unlock()
	}
	if n := s.total.Add(1); s.maxTotal > 0 && n > int64(s.maxTotal) {
		s.total.Add(-1)
		if c != nil {
			c.mu.Lock()
			c.count--
			c.mu.Unlock()
		}
		s.refused(LimitSubscriptions)
		return nil, refusal(LimitSubscriptions, s.maxTotal,
			"the gateway already runs %d subscriptions, the most it may; try again later", s.maxTotal)
	}
	s.active.Inc()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.total.Add(-1)
			s.active.Dec()
			if c != nil {
				c.mu.Lock()
				c.count--
				c.mu.Unlock()
			}
		})
	}, nil
}

// refusal is the GraphQL error of a subscription beyond a limit, as
// gateway/gqlhttp's document limits shape theirs.
func refusal(limit string, max int, format string, args ...any) *gqlerror.Error {
	err := gqlerror.Errorf(format, args...)
	err.Extensions = map[string]any{"code": apierror.LimitExceeded, "limit": limit, "max": max}
	return err
}

func (s *subscriptions) refused(limit string) {
	if s.refuse != nil {
		s.refuse(limit)
	}
}

// subscribeProduct is the body of every @product subscription field (see
// productfield): the key from the arguments as for the query field, the
// same access decision, then follow.
func subscribeProduct[T any](ctx context.Context, r *Resolver, name string, args ...any) (<-chan T, error) {
	key, err := r.Auth.FieldKey(ctx, name, args...)
	if err != nil {
		return refused[T](ctx, r.subs, err)
	}
	ch, err := follow(ctx, r, key.String(), 0, func(res cache.Result) (T, error) {
		var out T
		if err := json.Unmarshal(res.Value, &out); err != nil {
			return out, fmt.Errorf("product %s does not fit its GraphQL type: %w", res.Key, err)
		}
		return out, nil
	})
	if err != nil {
		return refused[T](ctx, r.subs, err)
	}
	return ch, nil
}

// refused answers a subscription that does not start (a limit, access, no
// such product, no data) over a WebSocket with the protocol's error message
// for its id, as graphql-transport-ws (and graphql-ws) define it: the
// transport sends errors added to the context when the stream closes,
// instead of a next carrying them followed by complete, which a client
// reads as a result and then a normal end. Over HTTP it is the field's
// error, as before.
func refused[T any](ctx context.Context, s *subscriptions, err error) (<-chan T, error) {
	if s == nil || s.subErr == nil || connFrom(ctx) == nil {
		return nil, err
	}
	s.subErr(ctx, err)
	ch := make(chan T)
	close(ch)
	return ch, nil
}

// subscribeKey is Subscription.product.
func subscribeKey(ctx context.Context, r *Resolver, key string, sinceVersion *string) (<-chan *model.Product, error) {
	var since uint64
	if sinceVersion != nil {
		v, err := strconv.ParseUint(*sinceVersion, 10, 64)
		if err != nil {
			return refused[*model.Product](ctx, r.subs, &gqlerror.Error{Message: "sinceVersion must be a version as the gateway gave it (a decimal string)",
				Extensions: map[string]any{"code": apierror.BadUserInput}})
		}
		since = v
	}
	key, err := r.Auth.ReadKey(ctx, key)
	if err != nil {
		return refused[*model.Product](ctx, r.subs, err)
	}
	ch, err := follow(ctx, r, key, since, func(res cache.Result) (*model.Product, error) { return toProduct(res), nil })
	if err != nil {
		return refused[*model.Product](ctx, r.subs, err)
	}
	return ch, nil
}

// follow sends key's value, then each newer version, converted, until ctx
// ends. The first read happens before it returns, so an error (no such
// product, no data, primer failed) is the subscription's error. Later
// failures keep the subscriber's last value and wait for the next change;
// they are logged.
func follow[T any](ctx context.Context, r *Resolver, key string, since uint64, conv func(cache.Result) (T, error)) (<-chan T, error) {
	s := r.subs
	if s == nil {
		return nil, errors.New("subscriptions are not served here")
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return nil, err
	}
	w, err := r.Cache.Watch(key)
	if err != nil {
		release()
		return nil, err
	}
	// Watching before the first read: a change in between is not lost.
	read := func(min uint64) (cache.Result, error) {
		rctx, cancel := context.WithTimeout(ctx, s.readTimeout)
		defer cancel()
		return r.Cache.GetAtLeast(rctx, key, min)
	}
	first, err := read(0)
	if err != nil {
		w.Stop()
		release()
		return nil, err
	}
	out := make(chan T)
	var reads *readQueue
	var op *graphql.OperationContext
	if graphql.HasOperationContext(ctx) {
		op = graphql.GetOperationContext(ctx)
		reads = s.queue(op)
	}
	go func() {
		defer release()
		defer w.Stop()
		if op != nil {
			defer s.pending.Delete(op)
		}
		// The transport stops reading when ctx ends; closing tells it
		// the stream is over.
		defer close(out)
		last := since
		cur := first
		for {
			if cur.Entry != nil && cur.Version > last {
				v, err := conv(cur)
				if err != nil {
					s.log.Error("subscription: cannot convert product", "key", key, "err", err)
					return
				}
				if reads != nil {
					reads.push(cur)
				}
				select {
				case out <- v:
					last = cur.Version
					s.sent.Inc()
				case <-w.C:
					// A newer version came while the client was slow:
					// read it and offer that instead.
					if reads != nil {
						reads.unpush()
					}
					cur = s.next(read, w, key, cur)
					continue
				case <-ctx.Done():
					return
				}
			}
			select {
			case <-w.C:
				cur = s.next(read, w, key, cur)
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// next reads the key after a signal; on failure it keeps prev.
func (s *subscriptions) next(read func(uint64) (cache.Result, error), w *cache.Watch, key string, prev cache.Result) cache.Result {
	r, err := read(w.Version())
	if err != nil {
		if !errors.Is(err, context.Canceled) {
			s.log.Warn("subscription: read after a change failed; the subscriber keeps its value", "key", key, "err", err)
		}
		return prev
	}
	return r
}
