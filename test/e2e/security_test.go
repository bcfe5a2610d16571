package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAPIToken: with --api-token every API route answers 401 without the token
// (or with a wrong one), accepts it as the dapr-api-token header or as
// Authorization: Bearer, and /healthz, /readyz and /metrics stay open. The CLI
// passes it with --token or WEFT_API_TOKEN.
func TestAPIToken(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token"
	s := startServer(t, t.TempDir(), "--api-token", token)
	if !strings.Contains(s.log(), "auth=true") {
		t.Errorf("the serving line does not say auth=true")
	}
	c := s.client(t)

	routes := []struct{ method, path, body string }{
		{"POST", "/v1.0-alpha1/workflows/dapr/OrderProcessingWorkflow/start?instanceID=tok-1", paperclips},
		{"POST", "/v1.0-beta1/workflows/dapr/OrderProcessingWorkflow/start", paperclips},
		{"POST", "/v1.0/workflows/dapr/OrderProcessingWorkflow/start", paperclips},
		{"GET", "/v1.0/workflows/dapr/tok-1", ""},
		{"POST", "/v1.0/workflows/dapr/tok-1/raiseEvent/ManagerApproval", "{}"},
		{"POST", "/v1.0/workflows/dapr/tok-1/pause", ""},
		{"POST", "/v1.0/workflows/dapr/tok-1/resume", ""},
		{"POST", "/v1.0/workflows/dapr/tok-1/terminate", ""},
		{"POST", "/v1.0/workflows/dapr/tok-1/purge", ""},
		{"GET", "/api/v1/workflows", ""},
		{"GET", "/api/v1/counts", ""},
		{"GET", "/api/v1/instances", ""},
		{"POST", "/api/v1/instances", `{"name":"ChainingWorkflow"}`},
		{"GET", "/api/v1/instances/tok-1", ""},
		{"GET", "/api/v1/instances/tok-1/history", ""},
		{"GET", "/api/v1/instances/tok-1/wait?timeout=1s", ""},
		{"POST", "/api/v1/instances/tok-1/events/x", "{}"},
		{"POST", "/api/v1/instances/tok-1/suspend", ""},
		{"POST", "/api/v1/instances/tok-1/resume", ""},
		{"POST", "/api/v1/instances/tok-1/terminate", ""},
		{"DELETE", "/api/v1/instances/tok-1", ""},
		{"GET", "/api/v1/nonexistent", ""}, // even the 404 needs the token
	}
	for _, rt := range routes {
		wantError(t, c.do(rt.method, rt.path, rt.body), 401, "ERR_UNAUTHORIZED")
		wantError(t, c.do(rt.method, rt.path, rt.body, "dapr-api-token", "wrong"), 401, "ERR_UNAUTHORIZED")
		wantError(t, c.do(rt.method, rt.path, rt.body, "Authorization", "Bearer wrong"), 401, "ERR_UNAUTHORIZED")
		wantError(t, c.do(rt.method, rt.path, rt.body, "Authorization", "Basic "+token), 401, "ERR_UNAUTHORIZED") // not Bearer
		wantError(t, c.do(rt.method, rt.path, rt.body, "dapr-api-token", token+"x"), 401, "ERR_UNAUTHORIZED")
	}
	wantError(t, c.do("GET", "/v1.0/workflows/dapr/tok-1", ""), 401, "ERR_UNAUTHORIZED")
	// Nothing above reached the runtime.
	r := c.expect(c.do("GET", "/api/v1/instances", "", "dapr-api-token", token), 200)
	if l := decode[v1List](t, r); len(l.Instances) != 0 {
		t.Fatalf("unauthorized requests started instances: %+v", l.Instances)
	}

	for _, open := range []string{"/healthz", "/readyz", "/metrics"} {
		c.expect(c.do("GET", open, ""), 200)
	}

	// The seed's flow with the token, once as each header.
	daprStart(t, &client{t: t, base: s.URL, http: plainHTTP, header: http.Header{"Dapr-Api-Token": {token}}},
		"v1.0-alpha1", "OrderProcessingWorkflow", "tok-1", paperclips)
	bearer := &client{t: t, base: s.URL, http: plainHTTP, header: http.Header{"Authorization": {"Bearer " + token}}}
	bearer.waitDone("tok-1")
	if st := getDapr(t, bearer, "v1.0-alpha1", "tok-1"); st.Properties["dapr.workflow.output"] != `{"Processed":true}` {
		t.Errorf("with the token: %+v", st)
	}

	// The CLI: 401 is a failed request (exit 1); --token and WEFT_API_TOKEN work.
	r1 := wantCLI(t, 1, nil, "status", "tok-1", "--server", s.URL)
	if !strings.Contains(r1.Stderr, "ERR_UNAUTHORIZED") {
		t.Errorf("%s", r1)
	}
	wantCLI(t, 1, nil, "status", "tok-1", "--server", s.URL, "--token", "wrong")
	if out := wantCLI(t, 0, nil, "status", "tok-1", "--server", s.URL, "--token", token); !strings.Contains(out.Stdout, `"COMPLETED"`) {
		t.Errorf("%s", out)
	}
	wantCLI(t, 0, []string{"WEFT_API_TOKEN=" + token, "WEFT_SERVER=" + s.URL}, "list")
	if out := wantCLI(t, 0, []string{"WEFT_API_TOKEN=" + token, "WEFT_SERVER=" + s.URL}, "start", "ChainingWorkflow", "--input", `{"value":1}`, "--wait"); !strings.Contains(out.Stdout, `"output": 5`) {
		t.Errorf("%s", out)
	}
}

// TestAPITokenNeedsBearerScheme: the token is accepted "as the dapr-api-token
// header or as Authorization: Bearer <token>" (api.Options.APIToken), so an
// Authorization header that carries the bare token without the Bearer scheme must
// be refused.
//
// Regression: "Authorization: s3cret-token" (no scheme) was once accepted as if
// it were "Authorization: Bearer s3cret-token".
func TestAPITokenNeedsBearerScheme(t *testing.T) {
	t.Parallel()
	const token = "s3cret-token"
	s := startServer(t, t.TempDir(), "--api-token", token)
	c := s.client(t)
	for _, path := range []string{"/api/v1/instances", "/v1.0/workflows/dapr/some-id"} {
		if r := c.do("GET", path, "", "Authorization", token); r.Status != http.StatusUnauthorized {
			t.Errorf("%s with \"Authorization: %s\" (no Bearer scheme); want 401 ERR_UNAUTHORIZED", r, token)
		}
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key, and
// returns the paths and a pool that trusts it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "weft e2e"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLS: with --tls-cert/--tls-key the server speaks HTTPS only; a client that
// trusts the certificate runs the seed's flow; one that does not is refused; the
// CLI works with --insecure and fails as "unreachable" (5) without it. The token
// works over TLS too.
func TestTLS(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := selfSigned(t)
	s := startServer(t, t.TempDir(), "--tls-cert", certFile, "--tls-key", keyFile, "--api-token", "tls-token")
	if !strings.HasPrefix(s.URL, "https://127.0.0.1:") {
		t.Fatalf("serving at %q, want https://127.0.0.1:PORT", s.URL)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	trusting := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	c := &client{t: t, base: s.URL, http: trusting, header: http.Header{"Dapr-Api-Token": {"tls-token"}}}

	c.expect(c.do("GET", "/healthz", ""), 200)
	daprStart(t, c, "v1.0-alpha1", "OrderProcessingWorkflow", "12345678", paperclips)
	c.waitDone("12345678")
	if st := getDapr(t, c, "v1.0-alpha1", "12345678"); st.RuntimeStatus != "COMPLETED" || st.Properties["dapr.workflow.output"] != `{"Processed":true}` {
		t.Errorf("over TLS: %+v", st)
	}
	wantError(t, (&client{t: t, base: s.URL, http: trusting, header: http.Header{}}).do("GET", "/api/v1/instances", ""), 401, "ERR_UNAUTHORIZED")

	// A client that does not trust the certificate is refused by its own check.
	untrusting := &client{t: t, base: s.URL, http: plainHTTP}
	if r, err := untrusting.try("GET", "/healthz", ""); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client without the CA: %v, %v; want a certificate error", r, err)
	}
	// Plain HTTP on the TLS port is not served.
	plain := &client{t: t, base: "http://" + strings.TrimPrefix(s.URL, "https://"), http: plainHTTP}
	if r, err := plain.try("GET", "/healthz", ""); err == nil && r.Status == 200 {
		t.Errorf("plain HTTP on the TLS port answered %s", r)
	}

	out := wantCLI(t, 0, nil, "status", "12345678", "--server", s.URL, "--insecure", "--token", "tls-token")
	if !strings.Contains(out.Stdout, `"Processed": true`) {
		t.Errorf("%s", out)
	}
	out = wantCLI(t, 0, nil, "start", "FanOutFanInWorkflow", "--input", `{"count":10}`, "--wait", "--server", s.URL, "--insecure", "--token", "tls-token")
	if !strings.Contains(out.Stdout, `"output": 55`) {
		t.Errorf("%s", out)
	}
	out = wantCLI(t, 5, nil, "status", "12345678", "--server", s.URL, "--token", "tls-token")
	if !strings.Contains(out.Stderr, "certificate") {
		t.Errorf("without --insecure: %s", out)
	}
}
