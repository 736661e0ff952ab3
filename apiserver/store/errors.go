package store

import "errors"

// Sentinel errors. Errors returned by the Store wrap these (match with
// errors.Is), or are *apierrors.StatusError values produced by an Admitter (or
// errors returned by a GuaranteedUpdate function), which are returned unchanged.
var (
	// ErrNotFound: the object, its namespace, or the named subresource does not exist.
	ErrNotFound = errors.New("not found")
	// ErrAlreadyExists: Create of a namespace/name that is taken.
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict: stale resourceVersion, or a uid that does not match the stored object.
	ErrConflict = errors.New("conflict")
	// ErrGone: Watch from a resourceVersion no longer in the kept history.
	ErrGone = errors.New("resource version too old")
	// ErrInvalidSelector: a field selector uses a key the resource does not
	// support (see Resource.FieldLabels). Maps to 400 Bad Request.
	ErrInvalidSelector = errors.New("invalid selector")
	// ErrInvalid: a request the store cannot carry out as given: no name, a
	// namespaced object without namespace or a cluster-scoped one with one, an
	// unknown subresource, an Admitter or update function that renamed the
	// object. Maps to 400 Bad Request (or 422 where the REST layer prefers).
	ErrInvalid = errors.New("invalid request")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store closed")
)
