//go:build browser

package ui_test

import (
	"bytes"
	"context"
	"image/png"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/taskhost/taskhost/internal/ui"
)

// Run with: go test -tags browser -run Browser ./internal/ui/
// UPDATE_SCREENSHOT=1 also writes docs/img/ui.png, the picture in docs/ui.md.
// CHROMIUM overrides the browser binary, /usr/bin/chromium by default
// (Debian: apt-get install -y --no-install-recommends chromium chromium-driver).

const screenshotPath = "../../docs/img/ui.png"

// browser starts headless Chromium with a fresh profile and returns a tab
// context; everything stops in t.Cleanup.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin := os.Getenv("CHROMIUM")
	if bin == "" {
		bin = "/usr/bin/chromium"
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no browser at %s (set CHROMIUM, or apt-get install -y --no-install-recommends chromium chromium-driver): %v", bin, err)
	}
	actx, acancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	require.NoError(t, chromedp.Do(ctx), "start chromium") // no timeout on the first call: it would end the browser
	return ctx
}

func TestBrowserDashboard(t *testing.T) {
	f := setup(t, ui.Options{ReadOnly: true, RequireAuth: true, Auth: ui.Auth{Username: "ops", Password: "browser-pw"}})
	f.enqueue(t, "emails", "email:send", 7) // no worker: they stay pending
	done := f.worker(t, "reports")
	f.enqueue(t, "reports", "report:build", 3)
	require.Eventually(t, func() bool { return done.Load() == 3 }, 10*time.Second, 20*time.Millisecond)

	ctx := browser(t)
	// Every request of the page, its API calls included, carries the
	// credentials, as after a browser's basic auth prompt. The page's
	// Google Fonts links are blocked so the test needs no network.
	req, _ := http.NewRequest(http.MethodGet, "/", nil)
	req.SetBasicAuth("ops", "browser-pw")
	_, err := chromedp.Call(ctx, network.Enable, network.EnableParams{})
	require.NoError(t, err)
	_, err = chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
		Headers: network.Headers{"Authorization": req.Header.Get("Authorization")}})
	require.NoError(t, err)
	_, err = chromedp.Call(ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{
		URLPatterns: []*network.BlockPattern{{URLPattern: "https://fonts.googleapis.com/*", Block: true}}})
	require.NoError(t, err)

	tctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()

	// 1. Load /ui; 2. wait for the queue table.
	table := chromedp.CSS(`table[aria-label="queues overview table"] tbody tr`)
	require.NoError(t, chromedp.Do(tctx,
		chromedp.EmulateViewport(1280, 740),
		chromedp.Navigate(f.srv.URL+"/ui"),
		chromedp.WaitVisible(table),
	))

	// 3. The queue names and counts the test made are in the table.
	rows, err := chromedp.Run(tctx, chromedp.Evaluate[[][]string](`
		[...document.querySelectorAll('table[aria-label="queues overview table"] tr')]
			.map(tr => [...tr.cells].map(c => c.innerText.trim()))`))
	require.NoError(t, err)
	require.GreaterOrEqual(t, len(rows), 3, "%v", rows)
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	require.NotContains(t, col, "Actions", "read-only: no action column")
	byQueue := map[string][]string{}
	for _, r := range rows[1:] {
		byQueue[r[col["Queue"]]] = r
	}
	require.Contains(t, byQueue, "emails", "%v", rows)
	require.Contains(t, byQueue, "reports", "%v", rows)
	require.Equal(t, "7", byQueue["emails"][col["Size"]])
	require.Equal(t, "0", byQueue["emails"][col["Processed"]])
	require.Equal(t, "3", byQueue["reports"][col["Processed"]])
	readOnly, err := chromedp.Run(tctx, chromedp.Evaluate[bool](`window.READ_ONLY`))
	require.NoError(t, err)
	require.True(t, readOnly)

	// 4. Screenshot, once the charts have finished animating: their SVG is
	// unchanged for 600 ms. CaptureScreenshot keeps the viewport; a
	// full-page capture resizes it and restarts the animations.
	_, err = chromedp.Run(tctx, chromedp.Evaluate[bool](`new Promise(done => {
		let last = "", same = 0;
		const iv = setInterval(() => {
			const svg = [...document.querySelectorAll(".recharts-surface")].map(s => s.innerHTML).join("|");
			if (svg !== "" && svg === last && document.querySelector(".recharts-bar-rectangles path")) {
				if (++same >= 3) { clearInterval(iv); done(true); }
			} else { same = 0; last = svg; }
		}, 200);
	})`, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	shot, err := chromedp.Run(tctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	img, err := png.Decode(bytes.NewReader(shot))
	require.NoError(t, err)
	require.Equal(t, 1280, img.Bounds().Dx())
	if os.Getenv("UPDATE_SCREENSHOT") == "1" {
		require.NoError(t, os.MkdirAll(filepath.Dir(screenshotPath), 0o755))
		require.NoError(t, os.WriteFile(screenshotPath, shot, 0o644))
		t.Logf("wrote %s", screenshotPath)
	}

	// The queue's own page shows the pending count on its tab.
	require.NoError(t, chromedp.Do(tctx,
		chromedp.Navigate(f.srv.URL+"/ui/queues/emails"),
		chromedp.Poll[chromedp.Void](`document.body.innerText.includes("Pending 7")`, chromedp.WithPollingTimeout(20*time.Second)),
	))
}
