package rest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/svclab/svclab/apiserver/store"
)

// conflictMessage is kube-apiserver's wording for a stale resourceVersion.
const conflictMessage = "the object has been modified; please apply your changes to the latest version and try again"

// errTarget names what a request was about, for error messages: the resource
// and name, and for creates the namespace whose absence the store reports as
// ErrNotFound.
type errTarget struct {
	gr   schema.GroupResource
	name string
	// createNamespace is set for creates of namespaced objects: a NotFound
	// from Create means this namespace does not exist.
	createNamespace string
}

func targetOf(res *store.Resource, name string) errTarget {
	if res == nil {
		return errTarget{name: name}
	}
	return errTarget{gr: schema.GroupResource{Group: res.Group, Resource: res.Name}, name: name}
}

// statusFor is THE place that maps an error to a Kubernetes Status: admission
// and decoding errors that already are API statuses pass through unchanged,
// store sentinels become NotFound, AlreadyExists, Conflict, Expired or
// BadRequest, an oversized body becomes RequestEntityTooLarge, anything else
// is an InternalError.
func statusFor(err error, t errTarget) *apierrors.StatusError {
	var se *apierrors.StatusError
	var apiStatus apierrors.APIStatus
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &se):
		return se
	case errors.As(err, &apiStatus):
		return &apierrors.StatusError{ErrStatus: apiStatus.Status()}
	case errors.As(err, &tooLarge):
		return apierrors.NewRequestEntityTooLargeError(fmt.Sprintf("limit is %d bytes", tooLarge.Limit))
	case errors.Is(err, store.ErrNotFound):
		if t.createNamespace != "" {
			return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, t.createNamespace)
		}
		return apierrors.NewNotFound(t.gr, t.name)
	case errors.Is(err, store.ErrAlreadyExists):
		return apierrors.NewAlreadyExists(t.gr, t.name)
	case errors.Is(err, store.ErrConflict):
		return apierrors.NewConflict(t.gr, t.name, errors.New(conflictMessage))
	case errors.Is(err, store.ErrGone):
		return apierrors.NewResourceExpired(err.Error())
	case errors.Is(err, store.ErrInvalidSelector), errors.Is(err, store.ErrInvalid):
		return apierrors.NewBadRequest(err.Error())
	case errors.Is(err, store.ErrClosed):
		return apierrors.NewServiceUnavailable(err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return apierrors.NewTimeoutError(err.Error(), 0)
	default:
		return apierrors.NewInternalError(err)
	}
}

// newStatusError builds a Status error with an explicit code and reason, for
// the few cases apierrors has no constructor for (415, 406).
func newStatusError(code int32, reason metav1.StatusReason, msg string) *apierrors.StatusError {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: code, Reason: reason, Message: msg,
	}}
}

// errUnsupportedMediaType is the 415 answer for a body in a type we do not read.
func errUnsupportedMediaType(contentType string, supported ...string) *apierrors.StatusError {
	return newStatusError(http.StatusUnsupportedMediaType, metav1.StatusReasonUnsupportedMediaType,
		fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s (got %q)",
			strings.Join(supported, ", "), contentType))
}

// statusObject returns the Status of err with apiVersion and kind set, ready to encode.
func statusObject(se *apierrors.StatusError) *metav1.Status {
	st := se.Status()
	st.APIVersion, st.Kind = "v1", "Status"
	if st.Status == "" {
		st.Status = metav1.StatusFailure
	}
	if st.Code == 0 {
		st.Code = http.StatusInternalServerError
	}
	return &st
}
