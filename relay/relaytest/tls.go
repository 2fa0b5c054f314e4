package relaytest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The SMTP sink can speak STARTTLS with a certificate made for this test
// process. The relay verifies its SMTP server's certificate as it does in
// production, against the system's roots, which Go reads once, from
// SSL_CERT_FILE when that is set. So a test binary whose relay logs in
// over TLS runs its tests with RunTrustingSinkCertificate.

var sinkCertificate struct {
	once sync.Once
	cert tls.Certificate
	pem  []byte
	err  error
	// trusted is the file SSL_CERT_FILE names, once set.
	trusted string
}

// RunTrustingSinkCertificate runs m's tests with SSL_CERT_FILE naming the
// certificate the SMTP sink serves, so the relay, in this process and in
// the child processes it starts, trusts the sink and nothing else. Call
// it from TestMain, before anything verifies a certificate:
//
//	func TestMain(m *testing.M) { os.Exit(relaytest.RunTrustingSinkCertificate(m)) }
func RunTrustingSinkCertificate(m *testing.M) int {
	_, certPEM, err := sinkTLS()
	if err == nil {
		var dir string
		if dir, err = os.MkdirTemp("", "relaytest-tls-"); err == nil {
			defer os.RemoveAll(dir)
			file := filepath.Join(dir, "sink.pem")
			if err = os.WriteFile(file, certPEM, 0o644); err == nil {
				err = os.Setenv("SSL_CERT_FILE", file)
				sinkCertificate.trusted = file
			}
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "relaytest: cannot make the SMTP sink's certificate:", err)
		return 1
	}
	return m.Run()
}

// sinkTLS is the sink's certificate, made once per process: a self-signed
// one for 127.0.0.1, ::1 and localhost, as httptest makes its own.
func sinkTLS() (tls.Certificate, []byte, error) {
	c := &sinkCertificate
	c.once.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			c.err = err
			return
		}
		template := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "relaytest SMTP sink"},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
			IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
			DNSNames:              []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
		if err != nil {
			c.err = err
			return
		}
		c.cert = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
		c.pem = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	})
	return c.cert, c.pem, c.err
}

// sinkTLSConfig is what a sink that speaks STARTTLS serves; it fails the
// test when the process would not trust it, which would otherwise show as
// a puzzling certificate error in the relay.
func sinkTLSConfig(t testing.TB) *tls.Config {
	t.Helper()
	if file := sinkCertificate.trusted; file == "" || os.Getenv("SSL_CERT_FILE") != file {
		t.Fatal("relaytest: this SMTP sink speaks TLS; run the tests with relaytest.RunTrustingSinkCertificate(m) in TestMain")
	}
	cert, _, err := sinkTLS()
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}
