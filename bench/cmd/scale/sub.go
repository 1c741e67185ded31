package main

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// wsMsg is a graphql-transport-ws message.
type wsMsg struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// arrival is a titleList pushed to a subscriber: the newest change it
// shows (seq, -1 for none) and when it was read.
type arrival struct {
	seq int
	at  time.Time
}

// subscriber is one WebSocket to a gateway, subscribed to titleList of
// every held author.
type subscriber struct {
	conn    *websocket.Conn
	cancel  context.CancelFunc
	done    chan struct{}
	writeMu sync.Mutex

	mu       sync.Mutex
	arrivals map[int][]arrival // by author, in the order read
	newest   map[int]int       // by author: the newest seq seen
	err      error
}

const titlesSub = `subscription($a: Int!) { titleList(authorId: $a) { id title } }`

// marker is in the title each change sets: its sequence number.
var marker = regexp.MustCompile(`kck-scale-(\d+)`)

func markerTitle(seq int) string { return fmt.Sprintf("kck-scale-%d", seq) }

// subscribe opens a subscriber on gw for authors 1..n and waits for every
// current value.
func subscribe(ctx context.Context, gw *gateway, n int) (*subscriber, error) {
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(gw.base, "http")+"/graphql",
		&websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		return nil, fmt.Errorf("%s: websocket: %w", gw.base, err)
	}
	conn.SetReadLimit(4 << 20)
	rctx, rcancel := context.WithCancel(context.Background())
	s := &subscriber{conn: conn, cancel: rcancel, done: make(chan struct{}),
		arrivals: map[int][]arrival{}, newest: map[int]int{}}
	acked := make(chan struct{})
	go s.read(rctx, acked)
	if err := s.send(dctx, wsMsg{Type: "connection_init"}); err != nil {
		s.close()
		return nil, err
	}
	select {
	case <-acked:
	case <-s.done:
		s.close()
		return nil, fmt.Errorf("%s: no connection_ack: %v", gw.base, s.failure())
	case <-dctx.Done():
		s.close()
		return nil, fmt.Errorf("%s: no connection_ack within a minute", gw.base)
	}
	for a := 1; a <= n; a++ {
		p, _ := json.Marshal(map[string]any{"query": titlesSub, "variables": map[string]int{"a": a}})
		if err := s.send(dctx, wsMsg{ID: strconv.Itoa(a), Type: "subscribe", Payload: p}); err != nil {
			s.close()
			return nil, err
		}
	}
	for {
		s.mu.Lock()
		got, err := len(s.arrivals), s.err
		s.mu.Unlock()
		if err != nil {
			s.close()
			return nil, fmt.Errorf("%s: %w", gw.base, err)
		}
		if got == n {
			return s, nil
		}
		select {
		case <-dctx.Done():
			s.close()
			return nil, fmt.Errorf("%s: %d of %d subscriptions answered within a minute", gw.base, got, n)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (s *subscriber) send(ctx context.Context, m wsMsg) error {
	b, _ := json.Marshal(m)
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	return s.conn.Write(ctx, websocket.MessageText, b)
}

// read records every titleList pushed, answers pings, and ends at the
// first error (which failure then tells).
func (s *subscriber) read(ctx context.Context, acked chan struct{}) {
	defer close(s.done)
	ack := sync.OnceFunc(func() { close(acked) })
	for {
		_, b, err := s.conn.Read(ctx)
		at := time.Now()
		if err != nil {
			s.setErr(err)
			return
		}
		var m wsMsg
		if err := json.Unmarshal(b, &m); err != nil {
			s.setErr(fmt.Errorf("bad message: %w", err))
			return
		}
		switch m.Type {
		case "connection_ack":
			ack()
		case "ping":
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := s.send(wctx, wsMsg{Type: "pong"})
			cancel()
			if err != nil {
				s.setErr(err)
				return
			}
		case "next":
			author, err := strconv.Atoi(m.ID)
			if err != nil {
				continue
			}
			if strings.Contains(string(m.Payload), `"errors"`) {
				s.setErr(fmt.Errorf("titleList(%d): %s", author, m.Payload))
				return
			}
			seq := -1
			for _, sm := range marker.FindAllSubmatch(m.Payload, -1) {
				if n, err := strconv.Atoi(string(sm[1])); err == nil && n > seq {
					seq = n
				}
			}
			s.mu.Lock()
			s.arrivals[author] = append(s.arrivals[author], arrival{seq: seq, at: at})
			if old, ok := s.newest[author]; !ok || seq > old {
				s.newest[author] = seq
			}
			s.mu.Unlock()
		case "error", "complete":
			s.setErr(fmt.Errorf("subscription %s ended: %s", m.ID, m.Payload))
			return
		}
	}
}

func (s *subscriber) setErr(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		s.err = err
	}
}

func (s *subscriber) failure() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// seen reports whether the subscriber has been pushed seq (or a newer
// change) of author.
func (s *subscriber) seen(author, seq int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.newest[author]
	return ok && n >= seq
}

// delivered is when the subscriber was first pushed a value of author
// showing seq or a newer change; ok false when it never was.
func (s *subscriber) delivered(author, seq int) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.arrivals[author] {
		if a.seq >= seq {
			return a.at, true
		}
	}
	return time.Time{}, false
}

func (s *subscriber) close() {
	s.cancel()
	_ = s.conn.CloseNow()
	<-s.done
}
