package scram

import (
	"crypto/sha256"
	"testing"
)

// RFC 7677's example exchange for SCRAM-SHA-256 (user "user", password "pencil").
func TestRFC7677(t *testing.T) {
	c := &Client{newHash: sha256.New}
	if err := c.Begin("user", "pencil", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Step(""); err != nil {
		t.Fatal(err)
	}
	// The RFC's client nonce instead of a random one.
	c.clientNonce = "rOprNGfwEbeRWgbNEkqO"
	c.clientFirstBare = "n=user,r=" + c.clientNonce
	final, err := c.Step("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
	if err != nil {
		t.Fatal(err)
	}
	want := "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	if final != want {
		t.Fatalf("client-final %q, want %q", final, want)
	}
	if c.Done() {
		t.Fatal("done before server-final")
	}
	// A wrong server signature is refused; the right one ends the exchange.
	bad := *c
	if _, err := bad.Step("v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="); err == nil || bad.Done() {
		t.Fatal("a wrong server signature was accepted")
	}
	if _, err := c.Step("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="); err != nil || !c.Done() {
		t.Fatalf("server-final refused: %v", err)
	}
}

func TestNonceMustExtendOurs(t *testing.T) {
	c := &Client{newHash: sha256.New}
	_ = c.Begin("user", "pencil", "")
	if _, err := c.Step(""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Step("r=someoneelse,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"); err == nil {
		t.Fatal("a foreign nonce was accepted")
	}
}
