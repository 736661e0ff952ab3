// Package browsertest starts the headless Chromium that svclab's browser
// tests drive (the UI's own tests in web and the end-to-end tests against a
// real lab), confined to loopback: every other destination goes to a proxy
// port where nothing listens and no name resolves, so the browser's own
// background services never reach the network.
package browsertest

import (
	"context"
	"os"
	"testing"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is the browser the tests drive (Debian's chromium package).
const ChromiumPath = "/usr/bin/chromium"

// Start starts headless Chromium with a fresh profile in tb's temporary
// directory and returns its first tab; it skips tb when Chromium is not
// installed. The browser is closed in tb's cleanup.
func Start(tb testing.TB) context.Context {
	tb.Helper()
	if _, err := os.Stat(ChromiumPath); err != nil {
		tb.Skipf("%s is not installed", ChromiumPath)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(ChromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-default-browser-check", true),
		// Loopback only: anything else goes to a proxy port where nothing
		// listens, and no name resolves (Chromium's own services use names).
		chromedp.ProxyServer("127.0.0.1:9"),
		chromedp.Flag("proxy-bypass-list", "127.0.0.1"),
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(1680, 1050),
	)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	tb.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	// Start the browser on a context without a deadline: a deadline on the
	// first action would end the browser with it.
	if err := chromedp.Do(ctx); err != nil {
		tb.Fatalf("start chromium: %v", err)
	}
	return ctx
}
