package apierror_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/kck-go/kck/apierror"
	"github.com/kck-go/kck/auth"
	"github.com/kck-go/kck/cache"
	"github.com/kck-go/kck/primers"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    error
		code   string
		status int
	}{
		{&primers.KeyError{Key: "a/x", Reason: "bad", Err: primers.ErrMalformedKey}, apierror.BadUserInput, 400},
		{fmt.Errorf("wrap: %w", primers.ErrBadParams), apierror.BadUserInput, 400},
		{fmt.Errorf("%w: year", primers.ErrBadInput), apierror.BadUserInput, 400},
		{fmt.Errorf("x: %w", primers.ErrUnknownProduct), apierror.NotFound, 404},
		{fmt.Errorf("x: %w", primers.ErrUnknownUpdater), apierror.NotFound, 404},
		{fmt.Errorf("x: %w", cache.ErrNotSet), apierror.NotFound, 404},
		{&cache.PrimerError{Product: "p", Key: "p/1", Err: fmt.Errorf("%w: no author", primers.ErrNoData)}, apierror.NotFound, 404},
		{&cache.PrimerError{Product: "p", Key: "p/1", Err: fmt.Errorf("%w: n", primers.ErrBadInput)}, apierror.BadUserInput, 400},
		{fmt.Errorf("x: %w", cache.ErrVersionMismatch), apierror.Conflict, 409},
		{&cache.PrimerError{Product: "p", Key: "p/1", Err: errors.New("db down")}, apierror.PrimerFailed, 502},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), apierror.Timeout, 504},
		{fmt.Errorf("updater u: %w", primers.Unavailable("the source database", errors.New("dial tcp 127.0.0.1:5432: connection refused"))), apierror.Unavailable, 503},
		{&cache.PrimerError{Product: "p", Key: "p/1", Err: primers.Unavailable("the source database", errors.New("EOF"))}, apierror.Unavailable, 503},
		{fmt.Errorf("bolt put %q: %w", "p/1", &os.PathError{Op: "write", Path: "/data/kck.db", Err: syscall.ENOSPC}), apierror.StorageFull, 507},
		{errors.New("pq: password authentication failed for user kck"), apierror.Internal, 500},
	} {
		c := apierror.Classify(tc.err)
		assert.Equal(t, tc.code, c.Code, "%v", tc.err)
		assert.Equal(t, tc.status, c.Status, "%v", tc.err)
	}
	// Internal details stay in the log.
	c := apierror.Classify(errors.New("pq: password authentication failed"))
	assert.Equal(t, "internal error", c.Message)
	assert.Equal(t, http.StatusInternalServerError, c.Status)
	// An unavailable service is named, its address is not.
	c = apierror.Classify(primers.Unavailable("the store", errors.New("dial tcp 10.1.2.3:9042: i/o timeout")))
	assert.Equal(t, "the store is unavailable; retry later", c.Message)
}

func TestClassifyAccess(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    error
		code   string
		status int
	}{
		{fmt.Errorf("%w: token is expired", auth.ErrInvalidToken), apierror.Unauthenticated, 401},
		{fmt.Errorf("%w: product p needs a token", auth.ErrUnauthenticated), apierror.Unauthenticated, 401},
		{fmt.Errorf("%w: product p needs scope s", auth.ErrForbidden), apierror.Forbidden, 403},
	} {
		c := apierror.Classify(tc.err)
		assert.Equal(t, tc.code, c.Code, "%v", tc.err)
		assert.Equal(t, tc.status, c.Status, "%v", tc.err)
		assert.Equal(t, tc.err.Error(), c.Message)
	}
}
