package domain

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// SealedTextPrefix starts a stored text that holds a sealed value rather
// than the value itself: the rest is the base64 of the sealer's envelope.
// Queued commands' env values and webhook signing secrets are stored so.
const SealedTextPrefix = "sealed:"

// SealText returns plaintext sealed under sealer, bound to ad, as stored
// text (SealedTextPrefix and the envelope's base64).
func SealText(sealer SecretSealer, plaintext string, ad []byte) (string, error) {
	sealed, err := sealer.Seal([]byte(plaintext), ad)
	if err != nil {
		return "", err
	}
	return SealedTextPrefix + base64.StdEncoding.EncodeToString(sealed), nil
}

// OpenText returns what text holds: opened under sealer if it is sealed
// text (sealed reports whether it was), else text itself. sealer may be
// nil when text is not sealed.
func OpenText(sealer SecretSealer, text string, ad []byte) (plaintext string, sealed bool, err error) {
	envelope, ok, err := sealedEnvelope(text)
	if err != nil || !ok {
		return text, false, err
	}
	if sealer == nil {
		return "", true, fmt.Errorf("sealed, and there is no secrets key")
	}
	opened, err := sealer.Open(envelope, ad)
	if err != nil {
		return "", true, err
	}
	return string(opened), true, nil
}

// RewrapText returns sealed text with its envelope passed through rewrap
// (which seals it again under another key), and whether text was sealed;
// text that is not is returned as it is.
func RewrapText(text string, ad []byte, rewrap func(sealed, ad []byte) ([]byte, error)) (string, bool, error) {
	envelope, ok, err := sealedEnvelope(text)
	if err != nil || !ok {
		return text, false, err
	}
	if envelope, err = rewrap(envelope, ad); err != nil {
		return "", true, err
	}
	return SealedTextPrefix + base64.StdEncoding.EncodeToString(envelope), true, nil
}

// sealedEnvelope returns the envelope that sealed text holds, and false
// for text that is not sealed.
func sealedEnvelope(text string) ([]byte, bool, error) {
	b64, ok := strings.CutPrefix(text, SealedTextPrefix)
	if !ok {
		return nil, false, nil
	}
	envelope, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, true, fmt.Errorf("sealed value is not base64: %w", err)
	}
	return envelope, true, nil
}
