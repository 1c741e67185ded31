package gqlhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"

	"github.com/kck-go/kck/apierror"
	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/graph"
)

// Subscriptions over WebSocket at /graphql: the connection's half. gqlgen's
// transport speaks both graphql-transport-ws (graphql-ws's protocol: Apollo
// Client, urql) and the older graphql-ws (subscriptions-transport-ws). This
// file accepts the connection, checks connection_init (auth), bounds the
// connection (its messages, its writes, its init) and closes it with the
// protocol's codes; the subscriptions it runs are package graph's (one
// product key followed through cache.Watch), which counts them per
// connection through the graph.Conn each connection's context carries.

// LimitConnections is the limit name (extensions.limit) of the bound on open
// WebSocket connections (SubscriptionOptions.MaxConnections).
const LimitConnections = "websocket_connections"

// Close codes of graphql-transport-ws used here. 4403 is what the protocol
// asks for when the server rejects connection_init; it is also used when a
// connection's token expires. graphql-ws's client retries on 4403 (it does
// not on 4401), calling connectionParams again: that is where a client puts
// a fresh token.
const (
	closeForbidden = 4403
	// What graphql-transport-ws asks for when a client breaks it (the
	// transport closes with 1002 for all of them): a malformed or
	// unexpected message, subscribe before connection_init is
	// acknowledged, a second connection_init, no connection_init in time,
	// a subscription id that is in use.
	closeBadRequest      = 4400
	closeUnauthorized    = 4401
	closeInitTimeout     = 4408
	closeSubscriberInUse = 4409
	closeTooManyInits    = 4429
)

// SubscriptionOptions configure subscriptions (see Options): the
// connection's bounds here, the subscriptions' own (MaxPerConnection,
// MaxTotal, ReadTimeout) passed to graph.ResolverOptions.
type SubscriptionOptions struct {
	// MaxPerConnection bounds the subscriptions one connection runs at
	// once; MaxTotal those of the whole gateway. Defaults 100 and 10,000;
	// negative: no bound.
	MaxPerConnection, MaxTotal int
	// MaxConnections bounds the WebSocket connections open at once (each
	// holds goroutines and buffers for as long as its client wants, idle or
	// not). Default 10,000; negative: no bound. The gateway enforces it.
	MaxConnections int
	// MaxMessageBytes bounds one message a client sends. The gateway sets
	// its request body limit; default 1 MiB.
	MaxMessageBytes int64
	// KeepAlive is the interval of the server's keepalive messages: "ka"
	// in graphql-ws, a ping (answered by the client's pong) in
	// graphql-transport-ws. Default 15 s.
	KeepAlive time.Duration
	// InitTimeout bounds the wait for connection_init. Default 10 s.
	InitTimeout time.Duration
	// WriteTimeout bounds one message's write; a client that reads nothing
	// for that long is disconnected. Default 10 s.
	WriteTimeout time.Duration
	// OriginPatterns are the browser origins (host patterns, as
	// github.com/coder/websocket matches them, e.g. "localhost:5173",
	// "*.example.com") allowed to open a WebSocket besides the gateway's
	// own; "*" allows every origin.
	OriginPatterns []string
	// Verifier, when set, verifies the token of connection_init.
	Verifier *auth.Verifier
	// ReadTimeout bounds each read of a product for a subscriber.
	// Default 30 s.
	ReadTimeout time.Duration
}

// WithDefaults returns o with defaults in its zero fields.
func (o SubscriptionOptions) WithDefaults() SubscriptionOptions {
	if o.MaxPerConnection == 0 {
		o.MaxPerConnection = 100
	}
	if o.MaxTotal == 0 {
		o.MaxTotal = 10_000
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = 10_000
	}
	if o.MaxMessageBytes == 0 {
		o.MaxMessageBytes = 1 << 20
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 15 * time.Second
	}
	if o.InitTimeout == 0 {
		o.InitTimeout = 10 * time.Second
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = 30 * time.Second
	}
	return o
}

// connState is one WebSocket connection's: its socket (to close it with a
// code of our own) and its count of subscriptions (graph's, through the
// connection's context: graph.WithConn).
type connState struct {
	subs   graph.Conn
	mu     sync.Mutex
	conn   *timedConn
	expiry *time.Timer
	// closing is a close asked for before the socket was accepted: done
	// as soon as it is.
	closing *closeFrame
}

type closeFrame struct {
	code   int
	reason string
}

type connKey struct{}

func connFrom(ctx context.Context) *connState {
	c, _ := ctx.Value(connKey{}).(*connState)
	return c
}

// closeWith closes the connection with a close code (the transport only
// closes with 1000 or 1002 itself).
// A connection that is still being accepted is closed once it is.
func (c *connState) closeWith(code int, reason string) {
	c.mu.Lock()
	conn := c.conn
	if conn == nil && c.closing == nil {
		c.closing = &closeFrame{code, reason}
	}
	c.mu.Unlock()
	if conn == nil {
		return
	}
	// The close handshake runs in the background (gqlgen's adapter): the
	// transport's read loop ends when the client answers it, or when the
	// handshake gives up on a client that does not (10 s at most).
	conn.closeWith(code, reason)
}

// setConn records the accepted socket, and closes it at once when a close
// was asked for meanwhile.
func (c *connState) setConn(conn *timedConn) {
	c.mu.Lock()
	c.conn = conn
	f := c.closing
	c.mu.Unlock()
	if f != nil {
		c.closeWith(f.code, f.reason)
	}
}

// connSet is the gateway's open WebSocket connections, so that a gateway
// shutting down can close them (they are hijacked: http.Server.Shutdown
// neither waits for them nor closes them).
type connSet struct {
	mu      sync.Mutex
	conns   map[*connState]struct{}
	closing bool
	empty   chan struct{} // closed once closing and no connection is left
}

func newConnSet() *connSet {
	return &connSet{conns: map[*connState]struct{}{}, empty: make(chan struct{})}
}

// add records c; false once closeAll was called: the connection is refused.
func (s *connSet) add(c *connState) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

// remove forgets c, whose connection ended.
func (s *connSet) remove(c *connState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
	if s.closing && len(s.conns) == 0 {
		s.closeEmpty()
	}
}

func (s *connSet) closeEmpty() {
	select {
	case <-s.empty:
	default:
		close(s.empty)
	}
}

// closeAll refuses connections from now on, closes the open ones with
// code and waits until they have all ended or ctx ends.
func (s *connSet) closeAll(ctx context.Context, code int, reason string) (int, error) {
	s.mu.Lock()
	s.closing = true
	open := make([]*connState, 0, len(s.conns))
	for c := range s.conns {
		open = append(open, c)
	}
	if len(open) == 0 {
		s.closeEmpty()
	}
	s.mu.Unlock()
	for _, c := range open {
		c.closeWith(code, reason)
	}
	select {
	case <-s.empty:
		return len(open), nil
	case <-ctx.Done():
		return len(open), fmt.Errorf("closing WebSockets: %w", ctx.Err())
	}
}

func (c *connState) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expiry != nil {
		c.expiry.Stop()
	}
}

// IsWebSocket reports whether r asks for a WebSocket upgrade.
func IsWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// wsServer is the connection half of subscriptions: gqlgen's WebSocket
// transport, configured, and connection_init's check.
type wsServer struct {
	opts SubscriptionOptions // with defaults
	log  *slog.Logger
}

// transport returns gqlgen's WebSocket transport, configured.
func (s *wsServer) transport() transport.Websocket {
	accept := websocket.AcceptOptions{OriginPatterns: s.opts.OriginPatterns}
	for _, p := range s.opts.OriginPatterns {
		if p == "*" {
			accept.InsecureSkipVerify = true // every origin: the operator said so
		}
	}
	return transport.Websocket{
		Implementation: wsImplementation{
			inner:   transport.CoderWebsocketImplementation{AcceptOptions: accept},
			timeout: s.opts.WriteTimeout,
		},
		InitFunc:              s.init,
		InitTimeout:           s.opts.InitTimeout,
		PayloadReadLimit:      &s.opts.MaxMessageBytes,
		KeepAlivePingInterval: s.opts.KeepAlive,
		PingPongInterval:      s.opts.KeepAlive,
		CloseFunc: func(ctx context.Context, _ int) {
			if c := connFrom(ctx); c != nil {
				c.stop()
			}
		},
		ErrorFunc: func(ctx context.Context, err error) {
			s.log.Debug("websocket", "err", err)
		},
	}
}

// init checks connection_init's payload. With a verifier, a token may come
// as "Authorization": "Bearer <JWT>" (what Apollo and urql users put in
// connectionParams, matching the HTTP header) or "authToken": "<JWT>" (the
// older subscriptions-transport-ws habit); a token in the upgrade request's
// Authorization header (non-browser clients) counts too. No token: the
// connection is anonymous and reaches public products only. An invalid
// token is refused with 4403. The connection is closed with 4403 when the
// token expires.
func (s *wsServer) init(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
	if s.opts.Verifier == nil {
		return ctx, nil, nil
	}
	tok, err := initToken(payload)
	if err != nil {
		return transport.WithWebsocketCloseCode(ctx, closeForbidden), nil, err
	}
	p := auth.PrincipalFrom(ctx)
	if tok != "" {
		if p, err = s.opts.Verifier.Verify(ctx, tok); err != nil {
			return transport.WithWebsocketCloseCode(transport.AppendCloseReason(ctx, "Forbidden: invalid token"), closeForbidden),
				nil, fmt.Errorf("%s", apierror.Classify(err).Message)
		}
	}
	if p == nil {
		return ctx, nil, nil
	}
	if c := connFrom(ctx); c != nil && !p.Expires.IsZero() {
		// At exp, with no leeway: a request's leeway forgives a clock
		// that runs a little ahead for the moment the request takes, but a
		// connection lives on, and a token inside its leeway when the
		// connection opens would be honoured half a minute past exp. One
		// that has expired already is refused now; graphql-ws's client
		// retries on 4403, asking connectionParams for a fresh token.
		left := p.Expires.Sub(s.opts.Verifier.Now())
		if left <= 0 {
			return transport.WithWebsocketCloseCode(transport.AppendCloseReason(ctx, "Forbidden: token expired"), closeForbidden),
				nil, errors.New("token expired")
		}
		c.mu.Lock()
		c.expiry = time.AfterFunc(left, func() {
			c.closeWith(closeForbidden, "Forbidden: token expired")
		})
		c.mu.Unlock()
	}
	return auth.WithPrincipal(ctx, p), nil, nil
}

// initToken finds the token in a connection_init payload.
func initToken(payload transport.InitPayload) (string, error) {
	for _, name := range []string{"Authorization", "authorization"} {
		if v, ok := payload[name]; ok {
			s, ok := v.(string)
			scheme, tok, cut := strings.Cut(s, " ")
			if !ok || !cut || !strings.EqualFold(scheme, "Bearer") {
				return "", errors.New(`invalid token: want "Authorization": "Bearer <token>" in connection_init's payload`)
			}
			return strings.TrimSpace(tok), nil
		}
	}
	if v, ok := payload["authToken"]; ok {
		s, ok := v.(string)
		if !ok {
			return "", errors.New(`invalid token: "authToken" must be a string`)
		}
		return strings.TrimPrefix(s, "Bearer "), nil
	}
	return "", nil
}

// connection in its request's connState (so init and the expiry timer can
// close it with a code) and bounds every write, since gqlgen writes with
// no deadline and holds its connection lock meanwhile: a client that stops
// reading would otherwise hold a goroutine and its buffers for ever.
type wsImplementation struct {
	inner   transport.WebsocketImplementation
	timeout time.Duration
}

func (i wsImplementation) Accept(w http.ResponseWriter, r *http.Request, o transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	conn, err := i.inner.Accept(w, r, o)
	if err != nil {
		return nil, err
	}
	wc := &timedConn{WebsocketConn: conn, timeout: i.timeout, strict: conn.Subprotocol() == transportWS}
	if c := connFrom(r.Context()); c != nil {
		c.setConn(wc)
	}
	return wc, nil
}

// timedConn also holds graphql-transport-ws clients to the protocol (strict),
// which gqlgen's transport leaves to a 1002 close for every breach: it reads
// each client message before the transport does, and closes with the
// protocol's own code when the message breaks it (see the close codes).
type timedConn struct {
	transport.WebsocketConn
	timeout time.Duration
	strict  bool // graphql-transport-ws

	mu     sync.Mutex
	closed bool
	inited bool                // connection_init was read
	active map[string]struct{} // subscription ids running
}

const transportWS = "graphql-transport-ws"

// maxActiveIDs bounds the ids remembered for 4409: more than any
// connection may run at once (the per-connection limit refuses the rest).
const maxActiveIDs = 10_000

func (c *timedConn) WriteJSON(v any) error {
	if c.strict {
		// A subscription the server completed or refused frees its id.
		if typ, id := messageOf(v); id != "" && (typ == "complete" || typ == "error") {
			c.mu.Lock()
			delete(c.active, id)
			c.mu.Unlock()
		}
	}
	t := time.AfterFunc(c.timeout, func() { _ = c.WebsocketConn.Close() })
	defer t.Stop()
	return c.WebsocketConn.WriteJSON(v)
}

// messageOf reads the type and id of a message gqlgen is about to send (its
// own unexported struct, whose fields Type and ID are exported).
func messageOf(v any) (typ, id string) {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		rv = rv.Elem()
	}
	if rv.Kind() != reflect.Struct {
		return "", ""
	}
	if f := rv.FieldByName("Type"); f.IsValid() && f.Kind() == reflect.String {
		typ = f.String()
	}
	if f := rv.FieldByName("ID"); f.IsValid() && f.Kind() == reflect.String {
		id = f.String()
	}
	return typ, id
}

// NextReader hands the transport the next client message, unless it breaks
// graphql-transport-ws: then the connection is closed with the protocol's
// code and the transport told it is closed.
func (c *timedConn) NextReader() (int, io.Reader, error) {
	typ, r, err := c.WebsocketConn.NextReader()
	if err != nil || !c.strict {
		return typ, r, err
	}
	b, err := io.ReadAll(r) // bounded by the connection's read limit
	if err != nil {
		return typ, nil, err
	}
	if code, reason := c.check(b); code != 0 {
		c.closeWith(code, reason)
		return 0, nil, net.ErrClosed
	}
	return typ, bytes.NewReader(b), nil
}

// check returns the close code for a client message that breaks
// graphql-transport-ws, 0 for one that does not.
func (c *timedConn) check(b []byte) (int, string) {
	var m struct {
		Type    *string         `json:"type"`
		ID      *string         `json:"id"`
		Payload json.RawMessage `json:"payload"`
	}
	if json.Unmarshal(b, &m) != nil || m.Type == nil {
		return closeBadRequest, "Invalid message received"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch *m.Type {
	case "connection_init":
		if c.inited {
			return closeTooManyInits, "Too many initialisation requests"
		}
		c.inited = true
	case "subscribe":
		// The transport answers connection_init before it reads another
		// message, and closes the connection when it refuses it: a
		// subscribe read after connection_init was acknowledged.
		if !c.inited {
			return closeUnauthorized, "Unauthorized"
		}
		var p struct {
			Query *string `json:"query"`
		}
		if m.ID == nil || *m.ID == "" || json.Unmarshal(m.Payload, &p) != nil || p.Query == nil {
			return closeBadRequest, "Invalid message received"
		}
		if _, dup := c.active[*m.ID]; dup {
			return closeSubscriberInUse, "Subscriber for " + shortID(*m.ID) + " already exists"
		}
		if c.active == nil {
			c.active = map[string]struct{}{}
		}
		if len(c.active) < maxActiveIDs {
			c.active[*m.ID] = struct{}{}
		}
	case "complete":
		if m.ID == nil {
			return closeBadRequest, "Invalid message received"
		}
		delete(c.active, *m.ID)
	case "ping", "pong":
	default:
		return closeBadRequest, "Invalid message received"
	}
	return 0, ""
}

func shortID(id string) string {
	if len(id) > 64 {
		return id[:64] + "..."
	}
	return id
}

// closeWith closes the connection with code, once: the transport's own
// close (1002, or 1000) after it is a no-op.
func (c *timedConn) closeWith(code int, reason string) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	c.mu.Unlock()
	_ = c.WebsocketConn.WriteClose(code, reason)
	_ = c.WebsocketConn.Close()
}

// WriteClose is the transport's close. On graphql-transport-ws its init
// timeout (1002) is the protocol's 4408.
func (c *timedConn) WriteClose(code int, reason string) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil
	}
	if c.strict && code == transport.WebsocketCloseProtocolError && reason == "connection initialisation timeout" {
		code, reason = closeInitTimeout, "Connection initialisation timeout"
	}
	return c.WebsocketConn.WriteClose(code, reason)
}

// The transport uses these optional interfaces when the conn has them.
func (c *timedConn) SetReadLimit(n int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(n)
	}
}

func (c *timedConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}
