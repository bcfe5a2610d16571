package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/weftrt/weft/cluster"
)

type clusterFlags struct {
	data, nodeID, gossip, actor, advertise, join, name, key, cert, certKey, ca, http string
}

// clusterConfig turns serve's cluster flags into the node's configuration.
func clusterConfig(f clusterFlags) (*cluster.NodeConfig, error) {
	if err := os.MkdirAll(f.data, 0o755); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", f.data, err)
	}
	id, err := cluster.LoadOrCreateNodeID(f.data, f.nodeID)
	if err != nil {
		return nil, usageErr("--node-id: %v", err)
	}
	if f.gossip == "" {
		f.gossip = fmt.Sprintf(":%d", cluster.DefaultGossipPort)
	}
	if f.actor == "" {
		f.actor = ":7947"
	}
	var join []string
	for _, a := range strings.Split(f.join, ",") {
		if a = strings.TrimSpace(a); a != "" {
			join = append(join, a)
		}
	}
	cfg := &cluster.NodeConfig{
		Gossip: cluster.Config{NodeID: id, ClusterName: f.name, BindAddr: f.gossip, Join: join, GossipKey: f.key,
			Meta: cluster.Meta{HTTPAddr: f.http}},
		ActorAddr: f.actor,
		Founder:   len(join) == 0,
	}
	if f.advertise != "" {
		_, port, err := net.SplitHostPort(f.gossip)
		if err != nil {
			return nil, usageErr("--gossip %q: %v", f.gossip, err)
		}
		cfg.Gossip.AdvertiseAddr = net.JoinHostPort(f.advertise, port)
		cfg.AdvertiseHost = f.advertise
	}
	if f.cert != "" {
		server, dial, err := clusterTLS(f.cert, f.certKey, f.ca)
		if err != nil {
			return nil, err
		}
		cfg.ServerOptions = []grpc.ServerOption{grpc.Creds(server)}
		cfg.DialOptions = []grpc.DialOption{grpc.WithTransportCredentials(dial)}
	}
	return cfg, nil
}

// clusterTLS builds mutual TLS for node-to-node messaging: every node presents
// its certificate and, with a CA, checks the other's.
func clusterTLS(certFile, keyFile, caFile string) (server, dial credentials.TransportCredentials, err error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("--cluster-tls-cert/--cluster-tls-key: %w", err)
	}
	sc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	dc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, nil, fmt.Errorf("--cluster-tls-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("--cluster-tls-ca %s: no PEM certificate in it", caFile)
		}
		sc.ClientCAs, sc.ClientAuth = pool, tls.RequireAndVerifyClientCert
		dc.RootCAs = pool
	} else {
		dc.InsecureSkipVerify = true //nolint:gosec // encrypted without a CA to verify against; --cluster-tls-ca adds verification
	}
	return credentials.NewTLS(sc), credentials.NewTLS(dc), nil
}

// advertised is addr with its host replaced by host when addr binds every
// interface (":3500") and host is set.
func advertised(addr, host string) string {
	h, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" || (h != "" && h != "0.0.0.0" && h != "::") {
		return addr
	}
	return net.JoinHostPort(host, port)
}
