package bridge

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

// secret is the YAML of a Bridge's spec.auth.secretFile.
type secret struct {
	Username string `json:"username"`
	Password string `json:"password"`
	// CAFile, CertFile and KeyFile are PEM files for TLS: the CA that
	// signed the broker's certificate, and a client certificate and key.
	CAFile   string `json:"caFile"`
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
}

// loadSecret reads the secret file (none: no credentials) into cfg. It is
// read at each connection attempt, so that rotated credentials are taken up
// without touching the Bridge.
func loadSecret(path string, cfg *Config) error {
	if s := cfg.URL.Scheme; s == "amqps" || s == "mqtts" {
		cfg.TLS = &tls.Config{ServerName: cfg.URL.Hostname(), MinVersion: tls.VersionTLS12}
	}
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: spec.auth.secretFile: %v", ErrInvalid, err)
	}
	var s secret
	if err := yaml.UnmarshalStrict(b, &s); err != nil {
		return fmt.Errorf("%w: spec.auth.secretFile %s: %v; it holds username, password, caFile, certFile and keyFile", ErrInvalid, path, err)
	}
	cfg.Username, cfg.Password = s.Username, s.Password
	if s.CAFile == "" && s.CertFile == "" {
		return nil
	}
	if cfg.TLS == nil {
		cfg.TLS = &tls.Config{ServerName: cfg.URL.Hostname(), MinVersion: tls.VersionTLS12}
	}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return fmt.Errorf("%w: caFile: %v", ErrInvalid, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%w: caFile %s holds no PEM certificate", ErrInvalid, s.CAFile)
		}
		cfg.TLS.RootCAs = pool
	}
	if s.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return fmt.Errorf("%w: certFile and keyFile: %v", ErrInvalid, err)
		}
		cfg.TLS.Certificates = []tls.Certificate{cert}
	}
	return nil
}
