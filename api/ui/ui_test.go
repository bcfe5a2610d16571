package ui

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestServesAssets(t *testing.T) {
	h := Handler("/ui/")
	for path, ctype := range map[string]string{
		"/ui/":            "text/html; charset=utf-8",
		"/ui/index.html":  "text/html; charset=utf-8",
		"/ui/style.css":   "text/css; charset=utf-8",
		"/ui/js/app.js":   "text/javascript; charset=utf-8",
		"/ui/favicon.svg": "image/svg+xml",
	} {
		rec := get(t, h, http.MethodGet, path)
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s: %d", path, rec.Code)
			continue
		}
		if got := rec.Header().Get("Content-Type"); got != ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", path, got, ctype)
		}
		for _, hd := range []string{"ETag", "Content-Security-Policy", "X-Content-Type-Options"} {
			if rec.Header().Get(hd) == "" {
				t.Errorf("GET %s: no %s header", path, hd)
			}
		}
	}
	if body := get(t, h, http.MethodGet, "/ui/").Body.String(); !strings.Contains(body, `<script type="module" src="js/app.js">`) {
		t.Errorf("index.html does not load js/app.js:\n%s", body)
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	h := Handler("/ui/")
	for _, path := range []string{"/ui/nope.js", "/ui/js/", "/ui/../ui.go", "/other/index.html"} {
		if rec := get(t, h, http.MethodGet, path); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, rec.Code)
		}
	}
	rec := get(t, h, http.MethodPost, "/ui/")
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /ui/: %d Allow %q, want 405 with Allow: GET, HEAD", rec.Code, rec.Header().Get("Allow"))
	}
	if rec := get(t, h, http.MethodHead, "/ui/js/app.js"); rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Errorf("HEAD: %d with %d bytes", rec.Code, rec.Body.Len())
	}
}

// TestRevalidation: a browser that has the file answers If-None-Match and gets 304.
func TestRevalidation(t *testing.T) {
	h := Handler("/ui/")
	first := get(t, h, http.MethodGet, "/ui/js/app.js")
	etag := first.Header().Get("ETag")
	if rec := get(t, h, http.MethodGet, "/ui/js/app.js", "If-None-Match", etag); rec.Code != http.StatusNotModified {
		t.Errorf("If-None-Match %s: %d, want 304", etag, rec.Code)
	}
	if rec := get(t, h, http.MethodGet, "/ui/js/app.js", "If-None-Match", `"old"`); rec.Code != http.StatusOK {
		t.Errorf("If-None-Match with another tag: %d, want 200", rec.Code)
	}
	if other := get(t, h, http.MethodGet, "/ui/style.css").Header().Get("ETag"); other == etag {
		t.Errorf("two files share the ETag %s", etag)
	}
}

// TestSelfContained: the assets reference nothing outside the binary (no CDN,
// no font service), and every module a script imports is embedded.
func TestSelfContained(t *testing.T) {
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	imports := regexp.MustCompile(`(?m)^import\s[^'"]*['"]([^'"]+)['"]`)
	n := 0
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		text := strings.ReplaceAll(string(b), "http://www.w3.org/2000/svg", "") // a namespace name, not fetched
		if m := external.FindString(text); m != "" {
			t.Errorf("%s refers to %s: the UI must not load anything from elsewhere", p, m)
		}
		if strings.HasSuffix(p, ".js") {
			for _, m := range imports.FindAllStringSubmatch(text, -1) {
				n++
				dir := p[:strings.LastIndex(p, "/")]
				target := dir + "/" + strings.TrimPrefix(m[1], "./")
				if !strings.HasPrefix(m[1], "./") {
					t.Errorf("%s imports %q: only relative modules (./x.js) are embedded", p, m[1])
				} else if _, err := fs.Stat(static, target); err != nil {
					t.Errorf("%s imports %s, which is not embedded", p, m[1])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Error("found no imports: the check is broken")
	}
}
