// Package tlsconf builds the TLS configurations of a node's HTTP API: the server's, whose certificate and client CAs
// are re-read from their files when these change (rotation without a restart), and the health probe's, which trusts
// exactly the node's own certificate.
//
// It owns no goroutine: the server checks its files during TLS handshakes, with a cheap stat at most once per
// Reloader check interval.
package tlsconf

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ErrInvalid marks files that were read but do not hold a usable certificate, key or CA bundle.
var ErrInvalid = errors.New("invalid TLS material")

// Files names the PEM files of the API's TLS.
type Files struct {
	// CertFile is the server's certificate, optionally followed by its intermediates (leaf first). Required.
	CertFile string
	// KeyFile is the private key of CertFile's leaf. Required.
	KeyFile string
	// ClientCAFile, when set, is a bundle of CAs: every client must present a certificate one of them signed
	// (mutual TLS). Empty means clients present none.
	ClientCAFile string
}

// LoadKeyPair reads and parses a certificate and its key. Read errors wrap the os error (which names the file);
// unusable contents wrap ErrInvalid. Neither error holds any key material.
func LoadKeyPair(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconf: read certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconf: read key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconf: %w: certificate %s and key %s: %w", ErrInvalid, certFile, keyFile, err)
	}
	if cert.Leaf == nil { // X509KeyPair fills Leaf unless GODEBUG x509keypairleaf=0
		if cert.Leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return tls.Certificate{}, fmt.Errorf("tlsconf: %w: certificate %s: %w", ErrInvalid, certFile, err)
		}
	}
	return cert, nil
}

// LoadCAs reads a PEM bundle of CA certificates. It fails (wrapping ErrInvalid) when the file holds none.
func LoadCAs(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: read CA bundle: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tlsconf: %w: %s holds no PEM certificate", ErrInvalid, file)
	}
	return pool, nil
}

// errNotOwnCert is the probe's answer to a server that presents another certificate than the node's own.
var errNotOwnCert = errors.New("tlsconf: the server does not present this node's certificate (--tls-cert)")

// ProbeConfig returns the client configuration of a node's health probe of its own API. The probe connects to the
// node by a loopback address that its certificate need not name, so instead of the usual chain and name checks it
// accepts exactly the leaf certificate in f.CertFile, proving that the server holds the node's key. With
// f.ClientCAFile set (mutual TLS) it presents the node's own certificate, which must then be signed by one of those
// CAs and allow client authentication.
func ProbeConfig(f Files) (*tls.Config, error) {
	cert, err := LoadKeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, err
	}
	leaf := cert.Leaf.Raw
	c := &tls.Config{
		MinVersion: tls.VersionTLS12,
		// Replaced by the pin in VerifyConnection: the node's own leaf certificate, byte for byte.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, leaf) {
				return errNotOwnCert
			}
			return nil
		},
	}
	if f.ClientCAFile != "" {
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
