// Package scalar holds the GraphQL custom scalars. JSON values pass through
// as raw bytes: a product's JSON is written to the response without being
// decoded and encoded again.
package scalar

import (
	"encoding/json"
	"errors"
	"io"

	"github.com/99designs/gqlgen/graphql"
)

// MarshalJSON writes raw JSON as is.
func MarshalJSON(v json.RawMessage) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		if len(v) == 0 {
			_, _ = io.WriteString(w, "null")
			return
		}
		_, _ = w.Write(v)
	})
}

// UnmarshalJSON accepts any input value (an object, list, string, number...).
func UnmarshalJSON(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, errors.New("JSON value must not be null")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return b, nil
}
