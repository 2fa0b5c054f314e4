package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The admin page is tested in a real browser: Debian's Chromium, headless,
// driven with chromedp. One browser serves every test of the package (a
// start costs about a second of CPU); each test gets a tab in a browser
// context of its own, so no cookie, cache or login crosses between tests.
var browser struct {
	once sync.Once
	ctx  context.Context // the running browser's chromedp context
	// missing says why there is no browser: nothing to run it with.
	missing string
	err     error
	stop    func()
}

// chromiumPaths are where Debian's package and other builds put it.
var chromiumPaths = []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome-stable", "google-chrome"}

func findChromium() string {
	for _, name := range chromiumPaths {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	return ""
}

// installChromium installs Debian's chromium, as scripts/test does, for a
// `go test` run on a machine that lacks it.
func installChromium() error {
	if os.Geteuid() != 0 {
		return errors.New("not root")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return errors.New("no apt-get")
	}
	cmd := exec.Command("sh", "-c", "apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium")
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get install chromium: %v: %s", err, out)
	}
	return nil
}

func startBrowser() {
	path := findChromium()
	if path == "" {
		fmt.Fprintln(os.Stderr, "Chromium not found: installing Debian's chromium with apt-get for the admin page's tests")
		if err := installChromium(); err != nil {
			browser.missing = "Chromium is not installed and could not be installed (" + err.Error() + "); install it with apt-get install chromium"
			return
		}
		if path = findChromium(); path == "" {
			browser.missing = "Chromium is still not on PATH after apt-get install chromium"
			return
		}
	}
	dir, err := os.MkdirTemp("", "relay-chromium-")
	if err != nil {
		browser.err = err
		return
	}
	// As root in a container: no sandbox, no GPU, and nothing that calls
	// home (those connections are refused here and slow every start).
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1200, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(allocCtx)
	browser.stop = func() {
		cancelBrowser()
		cancelAlloc()
		// Chromium's helpers can still write there for a moment.
		for range 50 {
			if os.RemoveAll(dir) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The first run starts the browser; it must not carry a timeout,
	// which would end the browser with it.
	if err := chromedp.Do(ctx); err != nil {
		browser.err = fmt.Errorf("start %s: %w", path, err)
		return
	}
	browser.ctx = ctx
}

// stopBrowser ends the shared browser, if a test started it.
func stopBrowser() {
	if browser.stop != nil {
		browser.stop()
	}
}

// newTab is a tab of the shared browser, in a browser context of its own,
// that sends the admin's Basic auth with every request (as a browser does
// once someone has logged in). Each step it runs must finish within a
// minute.
func newTab(t *testing.T, username, password string) context.Context {
	t.Helper()
	browser.once.Do(startBrowser)
	if browser.missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s; scripts/test installs it, so in CI this is a failure", browser.missing)
		}
		t.Log("!!!")
		t.Log("!!! SKIPPING the admin page's browser test: " + browser.missing)
		t.Log("!!!")
		t.Skip(browser.missing)
	}
	if browser.err != nil {
		t.Fatal(browser.err)
	}
	ctx, cancelTimeout := context.WithTimeout(browser.ctx, 2*time.Minute)
	ctx, cancelTab := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(func() { cancelTab(); cancelTimeout() })
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	login := base64.StdEncoding.EncodeToString([]byte(username + ":" + password))
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Authorization": "Basic " + login},
	}); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// do runs steps in the tab, failing the test with what was being done.
func do(t *testing.T, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// submit runs a step that loads another page, such as a click on a link
// or a form's button, and waits until that page has loaded; it returns its
// HTTP status.
func submit(t *testing.T, ctx context.Context, what string, step chromedp.Action[chromedp.Void]) int64 {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, step)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return resp.Status
}

// eval is the value of a JavaScript expression in the tab's page.
func eval[T any](t *testing.T, ctx context.Context, expression string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expression))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expression, err)
	}
	return v
}
