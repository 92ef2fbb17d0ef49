package scram

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/Shopify/sarama"
)

// Secure sets the programs' -tls-ca and -sasl-* flags on config: TLS trusting the CAs in
// caFile (sarama dials with tls.DialWithDialer, which also checks the broker address's host
// against the certificate), and SASL as user with mechanism, with this package's client for
// SCRAM. Shared by sync_producer and partition_consumer.
func Secure(config *sarama.Config, caFile, mechanism, user, password string) error {
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("-tls-ca: %v", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("-tls-ca: no certificate in %s", caFile)
		}
		config.Net.TLS.Enable = true
		config.Net.TLS.Config = &tls.Config{RootCAs: roots}
	}
	if user == "" {
		return nil
	}
	config.Net.SASL.Enable = true
	config.Net.SASL.User = user
	config.Net.SASL.Password = password
	config.Net.SASL.Mechanism = sarama.SASLMechanism(mechanism)
	// PLAIN at sarama's defaults: a v0 SaslHandshake, then the token as a bare frame. SCRAM
	// needs nothing else set: sarama 1.22 always sends a v1 SaslHandshake and SaslAuthenticate
	// v0 for it, whatever Config.Version says (broker.go, sendAndReceiveSASLSCRAMv1); it only
	// wants a SCRAM client, which it does not have.
	if generator := Generator(mechanism); generator != nil {
		config.Net.SASL.SCRAMClientGeneratorFunc = generator
	}
	return nil
}
