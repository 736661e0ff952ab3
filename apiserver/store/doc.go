// Package store keeps svclab's Kubernetes objects in an embedded bbolt file and
// streams every committed change to watchers, in the way kube-apiserver does
// with etcd and its watch cache.
//
// Layout of the file: one bucket per resource, named Resource.Name (e.g.
// "services"), whose keys are "namespace/name" (just "name" for cluster-scoped
// resources) and whose values are the objects encoded with encoding/json, with
// apiVersion and kind set. A bucket named "svclab.meta" holds the cluster-wide
// resourceVersion counter, which is incremented in the same transaction as each
// change it numbers.
//
// Writes: callers enqueue requests; a single writer goroutine takes every queued
// request (group commit), applies them in order inside ONE bbolt read-write
// transaction, admitting each on its own (a refused request changes nothing; a
// later request of the batch sees the earlier ones' changes), and commits once,
// so a batch costs one bbolt commit (its fsyncs). If the commit fails, the undo
// of every admitted write is called in reverse order and every caller of the
// batch gets the error. After a successful commit the in-memory view and the
// watch history are updated under one lock, and only then are the callers
// answered, so a caller that got its answer reads its own write. When the
// previous batch had several callers, the writer waits briefly (at most half
// the previous batch's duration, 2 ms) for them to come back before starting the
// next batch, which doubles the batch size under concurrent load.
//
// Reads: Get and List are served from an in-memory copy of the committed state
// (decoded objects, treated as immutable and handed out as deep copies). The
// copy is replaced in the same critical section that publishes the batch's watch
// events and advances the store's resourceVersion, so a List's resourceVersion
// is always consistent with the events a following Watch delivers, and reads never
// wait for the writer's fsync (they only wait for the short in-memory publish
// step). bbolt is read only by Open; the file is the durable copy.
//
// Deletion: Delete removes an object at once. DeleteWithOptions does what
// kube-apiserver's DELETE does: Pods are deleted gracefully (marked with
// metadata.deletionTimestamp and deletionGracePeriodSeconds, an update, and
// left for their kubelet to finish with a grace-0 delete), every other kind is
// removed at once. A Namespace delete removes everything in it at once, in one
// transaction, terminating Pods included (kube-apiserver's namespace
// controller would delete them gracefully first). No finalizers, and no
// forced removal of a Pod whose grace period ran out: a Pod on a node without
// a kubelet stays Terminating until deleted with grace 0.
//
// Watch: every committed change is appended to a bounded history ring
// (Options.HistorySize events). Each subscriber has its own goroutine that reads
// the ring from its own cursor and fills a buffered channel; the writer never
// waits for a subscriber. A subscriber whose cursor is overtaken by the ring (it
// fell more than HistorySize events behind) gets its channel closed and must
// re-list, as informers do.
package store
