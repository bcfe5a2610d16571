// Package ui serves weft's built-in web UI: plain HTML, CSS and JavaScript modules
// embedded in the binary with go:embed, so a fresh machine needs no build step and
// the browser fetches nothing from anywhere but the weft server itself.
//
// The assets are static and served without the API token; the pages read weft's
// /api/v1 routes from the browser and send the token there (asked for once, kept
// in the tab's sessionStorage) when the server requires one.
//
// The pages: the instance list (counts per status, filters, paging, live
// refresh) and one instance (status, payloads, failure, a timeline and a diagram
// drawn from its history, and the actions raise event, pause, resume, terminate
// and purge). Routing happens in the browser, in the URL's fragment
// (/ui/#/instances/ID), so the server only ever serves the files below static/.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var static embed.FS

// contentSecurityPolicy lets a page load scripts, styles, images and API answers
// from its own origin only: no CDN, no inline script, no request elsewhere.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// asset is one embedded file, read once.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// handler serves the embedded assets.
type handler struct {
	prefix string
	assets map[string]asset // by path below static/, e.g. "index.html", "js/app.js"
}

// Handler serves the UI at prefix (e.g. "/ui/"): prefix itself is index.html,
// prefix+"js/app.js" the file static/js/app.js. Answers carry an ETag (304 on
// If-None-Match) and are revalidated on every load, so a new binary's UI is
// never hidden behind a cached old one.
func Handler(prefix string) http.Handler {
	h := &handler{prefix: prefix, assets: map[string]asset{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		h.assets[strings.TrimPrefix(p, "static/")] = asset{body: b, contentType: contentType(p),
			etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		// The files are compiled in: failing to read them is a broken build.
		panic(fmt.Sprintf("ui: read embedded assets: %v", err))
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, ok := strings.CutPrefix(r.URL.Path, h.prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	if name == "" {
		name = "index.html"
	}
	a, ok := h.assets[path.Clean(name)]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("ETag", a.etag)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}

// contentType is set by extension, not from the system's MIME tables, so the
// answer is the same on every machine (browsers refuse modules served otherwise).
func contentType(p string) string {
	switch path.Ext(p) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	}
	return "application/octet-stream"
}
