package rest

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/svclab/svclab/apiserver/admission"
	"github.com/svclab/svclab/apiserver/store"
)

// nameValidator returns kube-apiserver's name rule for res: a DNS-1123 label
// for namespaces, a DNS-1035 label for services, a DNS-1123 subdomain for the
// others. validateUnstorable uses it for types admission does not know.
func nameValidator(res *store.Resource) apivalidation.ValidateNameFunc {
	switch res.Name {
	case "namespaces":
		return apivalidation.NameIsDNSLabel
	case "services":
		return apivalidation.NameIsDNS1035Label
	default:
		return apivalidation.NameIsDNSSubdomain
	}
}

// validateUnstorable answers a new object that the store refuses before the
// resource's Admitter could validate it: one with neither name nor
// generateName, or with a name longer than any kind allows (253 characters,
// which also keeps store keys within bbolt's limit). kube-apiserver validates
// such an object in full, so the answer is its 422 Invalid with every cause,
// metadata first, then spec (admission.ValidateNew; for a type admission does
// not know, the metadata causes alone). It returns nil for every other object.
//
// Those are validated by the resource's Admitter inside the store, metadata
// and spec into one list, as kube's registry strategies do; the REST layer
// does not check metadata first, which would answer with the metadata causes
// alone. A resource the store has no Admitter for is stored as given.
func validateUnstorable(res *store.Resource, obj store.Object) error {
	if (obj.GetName() != "" || obj.GetGenerateName() != "") && len(obj.GetName()) <= utilvalidation.DNS1123SubdomainMaxLength {
		return nil
	}
	errs := admission.ValidateNew(obj)
	if len(errs) == 0 {
		errs = apivalidation.ValidateObjectMetaAccessor(obj, res.Namespaced, nameValidator(res), field.NewPath("metadata"))
	}
	return apierrors.NewInvalid(res.GroupVersionKind().GroupKind(), obj.GetName(), errs)
}

// checkUnstorable is validateUnstorable behind the namespace check that comes
// first in kube-apiserver (its NamespaceLifecycle admission): a new
// namespaced object in a namespace that does not exist is 404 NotFound, even
// when it is also invalid.
func (h *handler) checkUnstorable(ctx context.Context, res *store.Resource, obj store.Object) error {
	err := validateUnstorable(res, obj)
	if err == nil || !res.Namespaced {
		return err
	}
	ns := obj.GetNamespace()
	if _, gerr := h.st.Get(ctx, store.Namespaces, "", ns); errors.Is(gerr, store.ErrNotFound) {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, ns)
	} else if gerr != nil {
		return gerr
	}
	return err
}

// prepareNamespace reconciles obj's namespace with the URL's: a namespaced
// object without one takes the URL's, one with a different one is 400; a
// cluster-scoped object's namespace is cleared (as kube-apiserver does).
func prepareNamespace(res *store.Resource, obj store.Object, urlNamespace string) error {
	if !res.Namespaced {
		obj.SetNamespace("")
		return nil
	}
	switch ns := obj.GetNamespace(); {
	case ns == "":
		obj.SetNamespace(urlNamespace)
	case ns != urlNamespace:
		return apierrors.NewBadRequest(fmt.Sprintf(
			"the namespace of the provided object (%s) does not match the namespace sent on the request (%s)", ns, urlNamespace))
	}
	return nil
}

// checkName refuses an object whose name differs from the URL's (400, with
// kube-apiserver's message).
func checkName(obj store.Object, urlName string) error {
	if obj.GetName() != urlName {
		return apierrors.NewBadRequest(fmt.Sprintf("the name of the object (%s) does not match the name on the URL (%s)",
			obj.GetName(), urlName))
	}
	return nil
}

// generateName fills in the name of an object that has only generateName,
// with five random characters as kube-apiserver does.
func generateName(obj store.Object) {
	if obj.GetName() == "" && obj.GetGenerateName() != "" {
		base := obj.GetGenerateName()
		const maxBase = 63 - 5
		if len(base) > maxBase {
			base = base[:maxBase]
		}
		obj.SetName(base + utilrand.String(5))
	}
}

// refuseDryRun answers ?dryRun=… with 400: svclab does not simulate writes,
// and silently writing would be worse than refusing.
func refuseDryRun(r *http.Request) error {
	if v := r.URL.Query()["dryRun"]; len(v) > 0 {
		return apierrors.NewBadRequest(fmt.Sprintf("dryRun (%v) is not supported by svclab", v))
	}
	return nil
}
