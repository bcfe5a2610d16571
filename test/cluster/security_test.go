package cluster_test

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
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClusterTLS: with --cluster-tls-*, nodes talk over mutual TLS and work as
// without it (a fan-out across both nodes, instances on each).
func TestClusterTLS(t *testing.T) {
	cert, key, ca := writeClusterCerts(t)
	c := startCluster(t, 2, "--cluster-tls-cert", cert, "--cluster-tls-key", key, "--cluster-tls-ca", ca)
	tb := ownerTable(t, c.nodes[0])
	ids := tb.idsOwnedBy("tls", map[string]int{"n1": 2, "n2": 2})
	var jobs []job
	for _, list := range ids {
		for _, id := range list {
			jobs = append(jobs, fanOutJob(id, 20, 20, 0))
		}
	}
	startJobs(t, jobs, c.nodes)
	waitJobs(t, jobs, []*node{c.nodes[1], c.nodes[0]}, 60*time.Second)

	// The actor port speaks TLS, and only to holders of a certificate the CA signed.
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conn, err := tls.Dial("tcp", c.nodes[0].Actor, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatalf("TLS handshake with n1's actor port: %v", err)
	}
	conn.Close()
	anon, err := tls.Dial("tcp", c.nodes[0].Actor, &tls.Config{RootCAs: pool, NextProtos: []string{"h2"}})
	if err == nil {
		// TLS 1.3 reports a refused client certificate on the first read.
		_ = anon.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = anon.Read(make([]byte, 1))
		anon.Close()
	}
	if err == nil {
		t.Fatal("n1's actor port accepted a client without a certificate")
	}
}

// TestPartitionCountMismatch: a node whose store has another partition count
// cannot join, and says why.
func TestPartitionCountMismatch(t *testing.T) {
	a := newNode(t, "pa", nil)
	a.start()
	b := newNode(t, "pb", []string{a.Gossip}, "--partitions", "64")
	if b.tryStart(30 * time.Second) {
		t.Fatal("a node with 64 partitions joined a cluster of 256")
	}
	log := strings.Join(b.cur().Lines(), "\n")
	if !strings.Contains(log, "partition count mismatch") || !strings.Contains(log, "256") || !strings.Contains(log, "64") {
		t.Fatalf("the refusal does not name both partition counts:\n%s", tail(log, 10))
	}
}

// writeClusterCerts writes a CA and one certificate for 127.0.0.1 signed by it
// (every node uses the same one here), and returns the file names.
func writeClusterCerts(t *testing.T) (certFile, keyFile, caFile string) {
	t.Helper()
	dir := t.TempDir()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "weft test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	nodeKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "weft node"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &nodeKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(nodeKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("node.pem", "CERTIFICATE", der), write("node-key.pem", "EC PRIVATE KEY", keyDER), write("ca.pem", "CERTIFICATE", caDER)
}
