package e2e

// Helpers of the browser tests: headless Chromium, a loopback forwarder from the root namespace
// to the lab's UI inside its host namespace, and small chromedp wrappers that poll the DOM with
// a deadline.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/svclab/svclab/netlab"
	"github.com/svclab/svclab/web/browsertest"
)

// artifactsDir receives the screenshots (gitignored), relative to this package's directory.
const artifactsDir = "../../web/testdata/artifacts"

// browserTimeout bounds one browser step; pollTimeout one wait for a DOM condition.
const (
	browserTimeout = 60 * time.Second
	pollTimeout    = 45 * time.Second
)

// newBrowser starts headless Chromium (loopback only, see browsertest) with a fresh profile and
// returns its first tab; it skips when Chromium is missing or labs cannot be built (not root).
// The browser is closed in tb's cleanup.
func newBrowser(tb testing.TB) context.Context {
	tb.Helper()
	requireLabs(tb)
	return browsertest.Start(tb)
}

// newTab opens a tab of the browser for tb and closes it in tb's cleanup.
func newTab(tb testing.TB, browser context.Context) context.Context {
	tb.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	tb.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("open a tab: %v", err)
	}
	return ctx
}

// browserDo runs browser actions with a deadline.
func browserDo(tb testing.TB, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.Helper()
	sctx, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		tb.Fatalf("%s: %v", what, err)
	}
}

// browserEval evaluates a JavaScript expression in the page.
func browserEval[T any](tb testing.TB, ctx context.Context, expr string) T {
	tb.Helper()
	sctx, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()
	v, err := chromedp.Run(sctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// browserWait polls a JavaScript predicate in the page every 50 ms until it is true; after
// pollTimeout it fails tb, logging what the page says in #status.
func browserWait(tb testing.TB, ctx context.Context, what, predicate string) {
	tb.Helper()
	sctx, cancel := context.WithTimeout(ctx, pollTimeout+10*time.Second)
	defer cancel()
	_, err := chromedp.Run(sctx, chromedp.Poll[bool](predicate,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(pollTimeout)))
	if err != nil {
		status, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.getElementById('status') || {}).textContent || ''`))
		tb.Fatalf("waiting for %s (%s): %v; page status %q", what, predicate, err, status)
	}
}

// browserShot saves a full-page PNG as artifactsDir/name.
func browserShot(tb testing.TB, ctx context.Context, name string) {
	tb.Helper()
	sctx, cancel := context.WithTimeout(ctx, browserTimeout)
	defer cancel()
	png, err := chromedp.Run(sctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		tb.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(artifactsDir, 0o755); err != nil {
		tb.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(artifactsDir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.Fatalf("screenshot %s: %v", name, err)
	}
	tb.Logf("screenshot: %s", path)
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// jsStrings quotes each of ss.
func jsStrings(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = jsString(s)
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// The forwarder.

// uiForwarder accepts connections on a loopback port of the root namespace and connects each to
// the lab's API/UI listener (apiAddr) inside the lab's host namespace, copying both ways. The
// svclab process sees every forwarded connection come from 127.0.0.1, as a browser on the lab's
// own host would.
type uiForwarder struct {
	ln       net.Listener
	hostPath string

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

// forwardUI starts a forwarder for l and returns the UI's base URL in the root namespace
// ("http://127.0.0.1:PORT"). The listener and every connection are closed in tb's cleanup.
func (l *lab) forwardUI(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen for the UI forwarder: %v", err)
	}
	f := &uiForwarder{ln: ln, hostPath: l.hostPath, conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.serve()
	tb.Cleanup(f.close)
	return "http://" + ln.Addr().String()
}

func (f *uiForwarder) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return // closed
		}
		if !f.track(c) {
			c.Close()
			return
		}
		f.wg.Add(1) // serve holds a count, so this never races close's Wait
		go f.pipe(c)
	}
}

// track registers c for close; false when the forwarder is already closed.
func (f *uiForwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *uiForwarder) untrack(cs ...net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		delete(f.conns, c)
		c.Close()
	}
}

// pipe connects the accepted c to the lab and copies until both directions are done.
func (f *uiForwarder) pipe(c net.Conn) {
	defer f.wg.Done()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	up, err := netlab.DialInNetns(ctx, f.hostPath, "tcp", apiAddr)
	cancel()
	if err != nil {
		f.untrack(c)
		return
	}
	if !f.track(up) {
		up.Close()
		f.untrack(c)
		return
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); copyHalf(up, c) }()
	go func() { defer wg.Done(); copyHalf(c, up) }()
	wg.Wait()
	f.untrack(c, up)
}

// copyHalf copies src to dst until EOF or an error, then half-closes dst's write side so the
// other end sees the EOF (the other direction may still carry an answer).
func copyHalf(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if cw, ok := dst.(interface{ CloseWrite() error }); ok && err == nil {
		_ = cw.CloseWrite()
		return
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		// A reset on one side: end both directions.
		dst.Close()
		src.Close()
	}
}

// close stops accepting, closes every open connection and waits for the copiers.
func (f *uiForwarder) close() {
	f.mu.Lock()
	f.closed = true
	f.ln.Close()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}
