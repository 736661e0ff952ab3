package store

import (
	"fmt"
	"slices"

	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
)

// ListOptions filter List results.
type ListOptions struct {
	LabelSelector labels.Selector // nil = everything
	// FieldSelector: nil = everything. Supported keys are res.FieldLabels:
	// metadata.name, metadata.namespace (namespaced resources), and per
	// resource e.g. spec.nodeName and status.phase for pods.
	FieldSelector fields.Selector
}

// Validate reports an error wrapping ErrInvalidSelector when the field
// selector uses a key res does not support.
func (o ListOptions) Validate(res *Resource) error {
	if o.FieldSelector == nil {
		return nil
	}
	for _, req := range o.FieldSelector.Requirements() {
		if _, ok := slices.BinarySearch(res.FieldLabels, req.Field); !ok {
			return fmt.Errorf("%w: field label %q not supported for %s (supported: %v)",
				ErrInvalidSelector, req.Field, res.Name, res.FieldLabels)
		}
	}
	return nil
}

// Matches reports whether obj, an object of res, passes both selectors. It
// does not validate the field selector (see Validate): an unsupported key
// matches as if the field were empty.
func (o ListOptions) Matches(res *Resource, obj Object) bool {
	if o.LabelSelector != nil && !o.LabelSelector.Empty() && !o.LabelSelector.Matches(labels.Set(obj.GetLabels())) {
		return false
	}
	if o.FieldSelector != nil && !o.FieldSelector.Empty() && !o.FieldSelector.Matches(objectFields{res, obj}) {
		return false
	}
	return true
}
