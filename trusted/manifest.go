// Package trusted holds the trusted documents of a gateway: the GraphQL
// operations an operator's own apps ship (safelisting, persisted operations,
// allow lists), read from the manifests front-end tools write, checked
// against the schema, and reloaded while the gateway serves.
//
// Two manifest formats are read, told apart by their shape:
//
//   - Apollo's persisted query manifest (generate-persisted-query-manifest):
//     {"format": "apollo-persisted-query-manifest", "version": 1,
//     "operations": [{"id": "...", "name": "...", "type": "query", "body": "..."}]}
//   - GraphQL Code Generator's persisted documents (the client preset's
//     persistedDocuments output): {"<hash>": "<document>", ...}
//
// A document is found by the id its manifest gives it and by the SHA-256 of
// its body (hex, with or without the "sha256:" prefix of the GraphQL over
// HTTP persisted documents appendix), so that Apollo's persisted-query link
// (extensions.persistedQuery.sha256Hash), a documentId, and the full text
// of a listed document all find it.
package trusted

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"
	"github.com/vektah/gqlparser/v2/validator"
)

// Document is one trusted document.
type Document struct {
	// ID is the id its manifest gives it; Name its operation's name, when
	// the manifest says (Apollo's) or the document has one.
	ID, Name string
	// Body is the document's text, as the manifest holds it.
	Body string
	// Hash is the hex SHA-256 of Body.
	Hash string
}

// Manifest is a set of trusted documents.
type Manifest struct {
	docs []*Document
	byID map[string]*Document
	raw  []byte // the file's bytes, to tell a change (Store)
}

// MaxBytes bounds a manifest file (a manifest of every operation of a large
// app is a few MiB).
const MaxBytes = 64 << 20

// ErrFormat is wrapped by every error of Parse.
var ErrFormat = errors.New("not a trusted documents manifest")

// Parse reads a manifest in either format. Its errors wrap ErrFormat and
// name the document at fault.
func Parse(data []byte) (*Manifest, error) {
	if len(data) > MaxBytes {
		return nil, fmt.Errorf("%w: %d bytes, the most is %d", ErrFormat, len(data), MaxBytes)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return nil, fmt.Errorf("%w: want a JSON object (Apollo's persisted query manifest, or GraphQL Code Generator's persisted documents)", ErrFormat)
	}
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFormat, err)
	}
	m := &Manifest{byID: map[string]*Document{}}
	if _, apollo := probe["operations"]; apollo || probe["format"] != nil {
		if err := m.apollo(data); err != nil {
			return nil, err
		}
	} else if err := m.codegen(probe); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Manifest) apollo(data []byte) error {
	var man struct {
		Format     string `json:"format"`
		Version    int    `json:"version"`
		Operations []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
			Type string `json:"type"`
			Body string `json:"body"`
		} `json:"operations"`
	}
	if err := json.Unmarshal(data, &man); err != nil {
		return fmt.Errorf("%w: Apollo manifest: %v", ErrFormat, err)
	}
	if man.Format != "apollo-persisted-query-manifest" || man.Version != 1 {
		return fmt.Errorf("%w: format %q version %d: want apollo-persisted-query-manifest version 1", ErrFormat, man.Format, man.Version)
	}
	for i, op := range man.Operations {
		name := op.Name
		if name == "" {
			name = fmt.Sprintf("operation %d", i+1)
		}
		if err := m.add(op.ID, name, op.Body); err != nil {
			return err
		}
	}
	return nil
}

func (m *Manifest) codegen(probe map[string]json.RawMessage) error {
	for id, raw := range probe {
		var body string
		if err := json.Unmarshal(raw, &body); err != nil {
			return fmt.Errorf("%w: document %q: want a string (GraphQL Code Generator's persisted documents map ids to documents)", ErrFormat, shorten(id))
		}
		if err := m.add(id, "", body); err != nil {
			return err
		}
	}
	return nil
}

// add keeps a document under its id and its hash.
func (m *Manifest) add(id, name, body string) error {
	label := name
	if label == "" {
		label = shorten(id)
	}
	switch {
	case id == "":
		return fmt.Errorf("%w: document %q has no id", ErrFormat, label)
	case strings.TrimSpace(body) == "":
		return fmt.Errorf("%w: document %q has no body", ErrFormat, label)
	}
	sum := sha256.Sum256([]byte(body))
	d := &Document{ID: id, Name: name, Body: body, Hash: hex.EncodeToString(sum[:])}
	if prev, dup := m.byID[id]; dup && prev.Body != body {
		return fmt.Errorf("%w: id %q is given to two documents", ErrFormat, shorten(id))
	}
	m.docs = append(m.docs, d)
	for _, k := range []string{id, d.Hash, "sha256:" + d.Hash} {
		if _, taken := m.byID[k]; !taken {
			m.byID[k] = d
		}
	}
	return nil
}

// Lookup returns the document with this id or hash.
func (m *Manifest) Lookup(id string) (*Document, bool) {
	if m == nil {
		return nil, false
	}
	d, ok := m.byID[id]
	return d, ok
}

// LookupBody returns the document whose text is body.
func (m *Manifest) LookupBody(body string) (*Document, bool) {
	if m == nil {
		return nil, false
	}
	sum := sha256.Sum256([]byte(body))
	d, ok := m.byID[hex.EncodeToString(sum[:])]
	return d, ok && d.Body == body
}

// Len is how many documents the manifest holds.
func (m *Manifest) Len() int {
	if m == nil {
		return 0
	}
	return len(m.docs)
}

// Validate parses and validates every document against schema, and returns
// the errors of those that fail, each naming its document.
func (m *Manifest) Validate(schema *ast.Schema) error {
	var errs []error
	for _, d := range m.docs {
		doc, err := parser.ParseQuery(&ast.Source{Name: d.ID, Input: d.Body})
		if err == nil && d.Name == "" && len(doc.Operations) == 1 {
			d.Name = doc.Operations[0].Name // Code Generator's manifest names none
		}
		label := d.Name
		if label == "" {
			label = shorten(d.ID)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("trusted document %q does not parse: %s", label, message(err)))
			continue
		}
		if list := validator.ValidateWithRules(schema, doc, nil); len(list) > 0 {
			errs = append(errs, fmt.Errorf("trusted document %q (id %s) does not validate against the schema: %s", label, shorten(d.ID), message(list)))
		}
	}
	return errors.Join(errs...)
}

func message(err error) string {
	var list gqlerror.List
	if errors.As(err, &list) && len(list) > 0 {
		msgs := make([]string, 0, len(list))
		for _, e := range list {
			msgs = append(msgs, e.Message)
		}
		return strings.Join(msgs, "; ")
	}
	var e *gqlerror.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return err.Error()
}

func shorten(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
