// Package scram is a SCRAM client (RFC 5802, with SHA-256 and SHA-512 as RFC 7677 and Kafka's
// KIP-84 use them) for sarama's Net.SASL.SCRAMClientGeneratorFunc, written with Go's standard
// library alone: Debian's sarama 1.22 leaves the SCRAM client to its user, and the usual one
// (xdg-go/scram) needs golang.org/x/crypto, which these programs do without.
//
// It sends no channel binding ("n,,"), checks that the server's nonce extends its own, and
// checks the server's signature in server-final, so that a server that does not know the
// password is not believed. Passwords are used as given (no SASLprep): ASCII ones, as in the
// tests, are unchanged by it.
package scram

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"github.com/Shopify/sarama"
)

// Client is one SCRAM exchange; it implements sarama.SCRAMClient.
type Client struct {
	newHash func() hash.Hash

	user, password, gs2Header string
	clientNonce               string
	clientFirstBare           string
	serverSignature           []byte
	step                      int
	done                      bool
}

// SHA256 makes SCRAM-SHA-256 clients.
func SHA256() sarama.SCRAMClient { return &Client{newHash: sha256.New} }

// SHA512 makes SCRAM-SHA-512 clients.
func SHA512() sarama.SCRAMClient { return &Client{newHash: sha512.New} }

// Generator returns the client generator for a sarama mechanism name, or nil if the mechanism
// is not SCRAM.
func Generator(mechanism string) func() sarama.SCRAMClient {
	switch mechanism {
	case sarama.SASLTypeSCRAMSHA256:
		return SHA256
	case sarama.SASLTypeSCRAMSHA512:
		return SHA512
	}
	return nil
}

// saslName escapes a user name as RFC 5802 wants it in n= and a=.
func saslName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// Begin starts an exchange as user with password (authzID: whom to act as; usually empty).
func (c *Client) Begin(user, password, authzID string) error {
	c.user, c.password = user, password
	c.gs2Header = "n,,"
	if authzID != "" {
		c.gs2Header = "n,a=" + saslName(authzID) + ","
	}
	c.step, c.done = 0, false
	return nil
}

// Done says whether the server's signature has been verified.
func (c *Client) Done() bool { return c.done }

// Step answers the server's last message: "" (none yet) gives client-first, server-first
// gives client-final, and server-final is verified.
func (c *Client) Step(challenge string) (string, error) {
	c.step++
	switch c.step {
	case 1:
		return c.clientFirst()
	case 2:
		return c.clientFinal(challenge)
	case 3:
		return "", c.verify(challenge)
	}
	return "", errors.New("scram: the exchange is over")
}

func (c *Client) clientFirst() (string, error) {
	raw := make([]byte, 24)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	// Printable and without commas, as RFC 5802 wants a nonce.
	c.clientNonce = base64.RawStdEncoding.EncodeToString(raw)
	c.clientFirstBare = "n=" + saslName(c.user) + ",r=" + c.clientNonce
	return c.gs2Header + c.clientFirstBare, nil
}

// attributes splits "a=x,b=y" into its attributes; the first must be first (RFC 5802 fixes the
// order).
func attributes(msg string) map[byte]string {
	attrs := map[byte]string{}
	for _, part := range strings.Split(msg, ",") {
		if len(part) >= 2 && part[1] == '=' {
			if _, seen := attrs[part[0]]; !seen {
				attrs[part[0]] = part[2:]
			}
		}
	}
	return attrs
}

func (c *Client) clientFinal(serverFirst string) (string, error) {
	attrs := attributes(serverFirst)
	if e, ok := attrs['e']; ok {
		return "", fmt.Errorf("scram: the server refused: %s", e)
	}
	if _, ok := attrs['m']; ok || strings.HasPrefix(serverFirst, "m=") {
		return "", errors.New("scram: the server wants an extension this client does not know")
	}
	nonce := attrs['r']
	if !strings.HasPrefix(serverFirst, "r=") || !strings.HasPrefix(nonce, c.clientNonce) ||
		len(nonce) == len(c.clientNonce) {
		return "", fmt.Errorf("scram: the server's nonce does not extend ours: %q", serverFirst)
	}
	salt, err := base64.StdEncoding.DecodeString(attrs['s'])
	if err != nil || len(salt) == 0 {
		return "", fmt.Errorf("scram: bad salt in %q", serverFirst)
	}
	iterations, err := strconv.Atoi(attrs['i'])
	if err != nil || iterations < 1 {
		return "", fmt.Errorf("scram: bad iteration count in %q", serverFirst)
	}

	salted := pbkdf2(c.newHash, []byte(c.password), salt, iterations)
	clientKey := c.hmac(salted, []byte("Client Key"))
	h := c.newHash()
	h.Write(clientKey)
	storedKey := h.Sum(nil)
	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte(c.gs2Header)) + ",r=" + nonce
	authMessage := []byte(c.clientFirstBare + "," + serverFirst + "," + withoutProof)
	proof := c.hmac(storedKey, authMessage)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	c.serverSignature = c.hmac(c.hmac(salted, []byte("Server Key")), authMessage)
	return withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof), nil
}

func (c *Client) verify(serverFinal string) error {
	attrs := attributes(serverFinal)
	if e, ok := attrs['e']; ok {
		return fmt.Errorf("scram: the server refused: %s", e)
	}
	v, ok := attrs['v']
	if !ok || !strings.HasPrefix(serverFinal, "v=") {
		return fmt.Errorf("scram: no server signature in %q", serverFinal)
	}
	signature, err := base64.StdEncoding.DecodeString(v)
	if err != nil || !hmac.Equal(signature, c.serverSignature) {
		return errors.New("scram: the server's signature is wrong (it does not know the password)")
	}
	c.done = true
	return nil
}

func (c *Client) hmac(key, data []byte) []byte {
	mac := hmac.New(c.newHash, key)
	mac.Write(data)
	return mac.Sum(nil)
}

// pbkdf2 is RFC 8018's PBKDF2 with HMAC over newHash, for one block of output (the hash's
// size), which is all SCRAM's SaltedPassword needs: Hi(password, salt, i).
func pbkdf2(newHash func() hash.Hash, password, salt []byte, iterations int) []byte {
	mac := hmac.New(newHash, password)
	mac.Write(salt)
	mac.Write([]byte{0, 0, 0, 1}) // INT(1): the first block
	u := mac.Sum(nil)
	out := append([]byte(nil), u...)
	for n := 1; n < iterations; n++ {
		mac.Reset()
		mac.Write(u)
		u = mac.Sum(u[:0])
		for i := range out {
			out[i] ^= u[i]
		}
	}
	return out
}
