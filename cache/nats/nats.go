// Package nats is the cluster's change bus on NATS (cache.Bus and
// cache.Assigner): one connection per gateway, core publish/subscribe for
// announcements, a queue group for refresh assignments, and
// request/reply for gathering an answer from every gateway.
//
// Subjects, under kck.<cluster> (Config.Cluster):
//
//	kck.<cluster>.changes        announcements; every gateway subscribes
//	kck.<cluster>.refresh        assignments; queue group "refresh": one gateway takes each,
//	                             with the sender's trace in a traceparent header
//	kck.<cluster>.gather.<topic> questions every gateway answers (the admin console's roster)
//
// Choices, and why:
//   - Core NATS, not JetStream: an announcement is a hint (the store holds
//     the value), so a lost one costs a store read, never data. A gateway
//     that may have lost some (disconnected, or dropped as a slow consumer)
//     is told (cache.BusHandler's Lost and Resumed) and drops its
//     in-process tier; a replayable stream would add a disk write on the
//     servers per change to save that one read per hot key after a rare
//     outage.
//   - No echo: a gateway does not receive its own announcements.
//   - The connection retries forever, also at start: a bus that is down
//     when a gateway starts is an outage, not a configuration error
//     (a malformed URL is). Announcements published meanwhile wait in the
//     client's reconnect buffer (8 MiB); past it, Publish fails and the
//     cache asks every gateway to resync once the bus is back.
//   - Pings every 5 s, two outstanding at most: a server that died without
//     closing the connection is noticed within about 10 s.
//   - Pending announcements per gateway are bounded (Config.PendingBytes);
//     past the bound the client drops them and says so, which the cache
//     treats as a gap.
package nats

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/tracing"
)

// Config configures a Bus.
type Config struct {
	// URL lists the NATS servers, comma-separated
	// (nats://user:password@host:4222,...; tls:// for TLS). Required unless
	// InProcess is set.
	URL string
	// Cluster names the gateways that share a store: their subjects are
	// under kck.<Cluster>. Required; characters other than letters,
	// digits, '-' and '_' become '_'.
	Cluster string
	// Name is this gateway's connection name (the cache's Owner), shown by
	// the NATS server's monitoring.
	Name string
	// InProcess connects to a server running in this process instead of
	// dialling URL (tests embed one with no port).
	InProcess natsgo.InProcessConnProvider
	// PendingBytes bounds announcements received and not yet applied.
	// Default 64 MiB.
	PendingBytes int
	// CredsFile and TLS files, when set, are passed to the client.
	CredsFile, TLSCAFile, TLSCertFile, TLSKeyFile string
	Logger                                        *slog.Logger
	// Registerer receives kck_bus_messages_total; nil registers nowhere.
	Registerer prometheus.Registerer
}

// ErrConfig: the Config is invalid (a usage error).
var ErrConfig = errors.New("nats bus config")

// Bus is the NATS change bus.
type Bus struct {
	nc       *natsgo.Conn
	cfg      Config
	log      *slog.Logger
	changes  string
	refresh  string
	gather   string
	messages *prometheus.CounterVec

	mu      sync.Mutex
	handler *cache.BusHandler
	up      bool // as last reported to handler
	subs    []*natsgo.Subscription
}

var (
	_ cache.Bus      = (*Bus)(nil)
	_ cache.Assigner = (*Bus)(nil)
)

// Open connects to the servers. It returns at once when they do not
// answer (the client keeps trying; see the package doc); only a Config it
// cannot use is an error.
func Open(cfg Config) (*Bus, error) {
	if cfg.URL == "" && cfg.InProcess == nil {
		return nil, fmt.Errorf("%w: no server URL", ErrConfig)
	}
	if cfg.Cluster == "" {
		return nil, fmt.Errorf("%w: no cluster name", ErrConfig)
	}
	if err := checkURLs(cfg.URL); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, redact(cfg.URL), err)
	}
	if cfg.PendingBytes == 0 {
		cfg.PendingBytes = 64 << 20
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	prefix := "kck." + subjectToken(cfg.Cluster)
	b := &Bus{cfg: cfg, log: log, changes: prefix + ".changes", refresh: prefix + ".refresh", gather: prefix + ".gather.",
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kck_bus_messages_total",
			Help: "Messages this gateway sent to and received from the change bus, by direction (sent, received) and kind (change, assign, reply, gather).",
		}, []string{"direction", "kind"})}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(b.messages); err != nil {
			return nil, err
		}
	}
	opts := []natsgo.Option{
		natsgo.Name(cfg.Name),
		natsgo.NoEcho(),
		natsgo.RetryOnFailedConnect(true),
		natsgo.MaxReconnects(-1),
		natsgo.ReconnectWait(250 * time.Millisecond),
		natsgo.ReconnectJitter(100*time.Millisecond, time.Second),
		natsgo.Timeout(2 * time.Second),
		natsgo.PingInterval(5 * time.Second),
		natsgo.MaxPingsOutstanding(2),
		natsgo.NoCallbacksAfterClientClose(),
		natsgo.ConnectHandler(func(*natsgo.Conn) { b.event(nil, true) }),
		natsgo.ReconnectHandler(func(*natsgo.Conn) { b.event(nil, true) }),
		natsgo.DisconnectErrHandler(func(_ *natsgo.Conn, err error) {
			if err == nil {
				err = errors.New("disconnected")
			}
			b.event(err, false)
		}),
		natsgo.ErrorHandler(func(_ *natsgo.Conn, sub *natsgo.Subscription, err error) {
			if errors.Is(err, natsgo.ErrSlowConsumer) && sub != nil && sub.Subject == b.changes {
				// Announcements were dropped: a gap, at once over.
				b.event(err, false)
				b.event(nil, true)
				return
			}
			b.log.Warn("change bus: error", "err", err)
		}),
	}
	if cfg.InProcess != nil {
		opts = append(opts, natsgo.InProcessServer(cfg.InProcess))
	}
	if cfg.CredsFile != "" {
		opts = append(opts, natsgo.UserCredentials(cfg.CredsFile))
	}
	if cfg.TLSCAFile != "" {
		opts = append(opts, natsgo.RootCAs(cfg.TLSCAFile))
	}
	if cfg.TLSCertFile != "" || cfg.TLSKeyFile != "" {
		opts = append(opts, natsgo.ClientCert(cfg.TLSCertFile, cfg.TLSKeyFile))
	}
	url := cfg.URL
	if url == "" {
		url = natsgo.DefaultURL // unused: InProcess
	}
	nc, err := natsgo.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, redact(cfg.URL), err)
	}
	b.nc = nc
	return b, nil
}

// checkURLs refuses a server list the client would only fail on later,
// reconnecting forever.
func checkURLs(urls string) error {
	if urls == "" {
		return nil
	}
	for u := range strings.SplitSeq(urls, ",") {
		p, err := url.Parse(strings.TrimSpace(u))
		if err != nil {
			return errors.New("not a URL")
		}
		switch {
		case p.Scheme != "nats" && p.Scheme != "tls" && p.Scheme != "ws" && p.Scheme != "wss":
			return fmt.Errorf("scheme %q: want nats://, tls://, ws:// or wss://", p.Scheme)
		case p.Host == "":
			return errors.New("no host")
		}
	}
	return nil
}

// subjectToken makes s one NATS subject token.
func subjectToken(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, s)
}

// redact drops passwords from a URL list for messages.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if scheme := strings.Index(p, "://"); scheme >= 0 && scheme < at {
				parts[i] = p[:scheme+3] + "***" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}

// event reports a change of the connection's state to the handler, once:
// the client's callbacks may repeat a state (its first connection, made
// before Subscribe, is reported after it).
func (b *Bus) event(err error, up bool) {
	b.mu.Lock()
	h := b.handler
	changed := h != nil && b.up != up
	b.up = up
	b.mu.Unlock()
	if !changed {
		return
	}
	if up {
		b.log.Info("change bus: connected", "server", b.nc.ConnectedUrlRedacted())
		if h.Resumed != nil {
			h.Resumed()
		}
		return
	}
	if h.Lost != nil {
		h.Lost(err)
	}
}

// Connected reports whether the connection is up.
func (b *Bus) Connected() bool { return b.nc.IsConnected() }

// Publish sends ch to every other gateway. A change whose inline value
// would pass the servers' payload limit is sent without it.
func (b *Bus) Publish(ch cache.Change) error {
	msg := ch.AppendBinary(nil)
	if ch.Entry != nil && int64(len(msg)) > b.nc.MaxPayload() && b.nc.MaxPayload() > 0 {
		ch.Entry = nil
		msg = ch.AppendBinary(msg[:0])
	}
	if err := b.nc.Publish(b.changes, msg); err != nil {
		return fmt.Errorf("nats publish %q: %w", ch.Key, err)
	}
	b.count("sent", "change")
	return nil
}

func (b *Bus) count(direction, kind string) { b.messages.WithLabelValues(direction, kind).Inc() }

// Subscribe delivers the other gateways' announcements to h.
func (b *Bus) Subscribe(h cache.BusHandler) error {
	b.mu.Lock()
	if b.handler != nil {
		b.mu.Unlock()
		return errors.New("nats bus: Subscribe called twice")
	}
	b.handler = &h
	b.up = b.nc.IsConnected()
	b.mu.Unlock()
	sub, err := b.nc.Subscribe(b.changes, func(m *natsgo.Msg) {
		b.count("received", "change")
		ch, err := cache.ParseChange(m.Data)
		if err != nil {
			b.log.Warn("change bus: bad announcement", "err", err, "bytes", len(m.Data))
			return
		}
		h.Change(ch)
	})
	if err != nil {
		return fmt.Errorf("nats subscribe: %w", err)
	}
	if err := sub.SetPendingLimits(1<<20, b.cfg.PendingBytes); err != nil {
		return fmt.Errorf("nats subscribe: %w", err)
	}
	b.keep(sub)
	return nil
}

// keep holds sub, once the servers know of it when the bus is up (so that
// what is published after this returns reaches it).
func (b *Bus) keep(sub *natsgo.Subscription) {
	b.mu.Lock()
	b.subs = append(b.subs, sub)
	b.mu.Unlock()
	if b.nc.IsConnected() {
		_ = b.nc.FlushTimeout(5 * time.Second)
	}
}

// Assign asks one other gateway of the queue group to refresh key (no
// echo: never this one; alone, it gets cache.ErrNoAssignee and refreshes
// the key itself). ctx's span context, when it has one, goes in the
// message's traceparent header.
func (b *Bus) Assign(ctx context.Context, key string, asked time.Time) error {
	req := natsgo.NewMsg(b.refresh)
	req.Data = binary.AppendVarint(nil, asked.UnixMicro())
	req.Data = append(req.Data, key...)
	if tp := tracing.TraceParent(trace.SpanContextFromContext(ctx)); tp != "" {
		req.Header.Set(traceParent, tp)
	}
	b.count("sent", "assign")
	m, err := b.nc.RequestMsgWithContext(ctx, req)
	switch {
	case errors.Is(err, natsgo.ErrNoResponders):
		return fmt.Errorf("%w: %s", cache.ErrNoAssignee, key)
	case err != nil:
		return fmt.Errorf("nats assign %q: %w", key, err)
	}
	b.count("received", "reply")
	if len(m.Data) > 0 {
		return &RemoteError{Key: key, Msg: string(m.Data)}
	}
	return nil
}

// traceParent is the header of an assignment's trace context (W3C's name).
const traceParent = "traceparent"

// RemoteError is a refresh that failed on the gateway that took it.
type RemoteError struct{ Key, Msg string }

func (e *RemoteError) Error() string {
	return "refresh of " + e.Key + " failed on another gateway: " + e.Msg
}

// ServeAssignments takes this gateway's share of the assignments.
func (b *Bus) ServeAssignments(fn func(ctx context.Context, key string, asked time.Time, done func(error))) error {
	sub, err := b.nc.QueueSubscribe(b.refresh, "refresh", func(m *natsgo.Msg) {
		b.count("received", "assign")
		us, n := binary.Varint(m.Data)
		if n <= 0 {
			b.log.Warn("change bus: bad assignment", "bytes", len(m.Data))
			return
		}
		ctx := context.Background()
		if sc, ok := tracing.ParseTraceParent(m.Header.Get(traceParent)); ok {
			ctx = trace.ContextWithRemoteSpanContext(ctx, sc)
		}
		fn(ctx, string(m.Data[n:]), time.UnixMicro(us), func(err error) {
			var reply []byte
			if err != nil {
				reply = []byte(err.Error())
				if len(reply) == 0 {
					reply = []byte("failed")
				}
			}
			if m.Reply == "" {
				return
			}
			if err := m.Respond(reply); err == nil {
				b.count("sent", "reply")
			}
		})
	})
	if err != nil {
		return fmt.Errorf("nats serve assignments: %w", err)
	}
	b.keep(sub)
	return nil
}

// Gather sends q to every other gateway that answers topic (no echo: not
// this one) and returns the answers that arrive before ctx ends.
func (b *Bus) Gather(ctx context.Context, topic string, q []byte) ([][]byte, error) {
	inbox := b.nc.NewInbox()
	ch := make(chan *natsgo.Msg, 1024)
	sub, err := b.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return nil, fmt.Errorf("nats gather: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := b.nc.PublishRequest(b.gather+subjectToken(topic), inbox, q); err != nil {
		return nil, fmt.Errorf("nats gather: %w", err)
	}
	b.count("sent", "gather")
	var out [][]byte
	for {
		select {
		case m := <-ch:
			if len(m.Data) == 0 && m.Header.Get("Status") != "" {
				continue // "no responders": nobody else answers
			}
			b.count("received", "gather")
			out = append(out, m.Data)
			if len(out) == cap(ch) {
				return out, nil
			}
		case <-ctx.Done():
			return out, nil
		}
	}
}

// Answer answers the other gateways' questions on topic with fn.
func (b *Bus) Answer(topic string, fn func(q []byte) []byte) error {
	sub, err := b.nc.Subscribe(b.gather+subjectToken(topic), func(m *natsgo.Msg) {
		b.count("received", "gather")
		if m.Reply != "" && m.Respond(fn(m.Data)) == nil {
			b.count("sent", "gather")
		}
	})
	if err != nil {
		return fmt.Errorf("nats answer: %w", err)
	}
	b.keep(sub)
	return nil
}

// Close sends what is still buffered (a short while at most) and closes
// the connection; call it after the cache that uses it is closed.
func (b *Bus) Close() error {
	if b.nc.IsConnected() {
		_ = b.nc.FlushTimeout(2 * time.Second)
	}
	b.nc.Close()
	return nil
}
