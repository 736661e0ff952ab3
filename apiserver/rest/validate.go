package rest

import (
	"fmt"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/svclab/svclab/apiserver/store"
)

// nameValidator returns kube-apiserver's name rule for res: a DNS-1123 label
// for namespaces, a DNS-1035 label for services, a DNS-1123 subdomain for the
// others.
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

// validateMeta checks obj's metadata the way kube-apiserver's generic
// registry does before any kind-specific validation: name (or generateName)
// present and valid for the kind, namespace present exactly for namespaced
// kinds, labels, annotations, finalizers, owner references. Failures are 422
// Invalid with one cause per field.
func validateMeta(res *store.Resource, obj store.Object) error {
	errs := apivalidation.ValidateObjectMetaAccessor(obj, res.Namespaced, nameValidator(res), field.NewPath("metadata"))
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(res.GroupVersionKind().GroupKind(), obj.GetName(), errs)
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
