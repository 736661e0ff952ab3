// Package rest serves svclab's Kubernetes-shaped HTTP API over the store: the
// same paths, verbs, status codes and JSON as kube-apiserver, so that curl,
// kubectl (without a kubeconfig, against http://localhost:8080) and client-go
// work unchanged.
//
// What it serves (see NewHandler):
//
//   - /api/v1/{namespaces,nodes}[/{name}[/status]]
//   - /api/v1/namespaces/{ns}/{services,pods,endpoints}[/{name}[/status]]
//   - /apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices[/{name}]
//   - cluster-wide lists and watches: /api/v1/{services,pods,endpoints},
//     /apis/discovery.k8s.io/v1/endpointslices
//   - discovery (/api, /api/v1, /apis, /apis/discovery.k8s.io[/v1]), /version,
//     /healthz, /livez, /readyz
//   - POST /lab/v1/apply: a multi-document manifest created-or-updated object by
//     object the way `kubectl apply` does (see ApplyResponse)
//
// Verbs: list (labelSelector, fieldSelector), get, create (POST), replace (PUT),
// patch (merge, strategic merge and JSON patch, applied atomically through
// store.GuaranteedUpdate), delete and watch (?watch=true, a stream of
// metav1.WatchEvent JSON lines).
//
// Delete takes DeleteOptions from the body, or from the query when there is
// no body (?gracePeriodSeconds=, ?propagationPolicy=, ?uid=, ...), exactly as
// kube-apiserver: preconditions (409), gracePeriodSeconds, and
// propagationPolicy/orphanDependents, validated (422) and otherwise without
// effect (no garbage collector). Pods are deleted gracefully
// (store.DeleteWithOptions): the answer is the pod with
// metadata.deletionTimestamp and deletionGracePeriodSeconds set, "Terminating"
// in kubectl get, until its kubelet (apiserver/controllers) stops it and
// deletes it with grace 0; gracePeriodSeconds=0 (kubectl delete --force
// --grace-period=0), an unscheduled or a finished pod are removed at once.
// Every other kind is removed at once. Bodies may be JSON
// or YAML; responses are JSON, YAML (Accept: application/yaml) or a
// meta.k8s.io/v1 Table (the server-side printing kubectl asks for).
//
// Errors are metav1.Status objects; the single place that maps store and
// admission errors to them is statusFor in errors.go.
//
//   - /openapi/v3: paths and parameters only, no schemas (see openapi.go), so
//     that kubectl create/replace/apply validate on the server
//     (?fieldValidation=Strict) without --validate=false
//
// kubectl (tested with the real binary in TestKubectl, no kubeconfig, --server
// http://127.0.0.1:PORT): get (server-side tables, -A, -o wide/yaml/json/name,
// -l, -w), create -f, apply -f (client-side apply: last-applied annotation,
// created/unchanged/configured), replace, label/annotate/patch/edit, delete
// (which waits through a watch until the object is gone: for a pod, until its
// kubelet finished it; --force --grace-period=0 at once), describe (without events: there is no events
// resource), api-resources, version. Not working: explain (no schemas),
// apply --server-side, --dry-run=server and diff (dryRun is refused).
//
// Not served: protobuf, server-side apply (application/apply-patch+yaml),
// deletecollection, dryRun (400), /openapi/v2 (404), schemas (kubectl explain
// reports the kind "not found in OpenAPI schema"). The API server does no
// authentication: bind it to loopback.
package rest
