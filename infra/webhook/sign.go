// Package webhook delivers webhook messages over HTTP as the Standard
// Webhooks specification describes them (signed with HMAC-SHA256 in the
// webhook-id, webhook-timestamp and webhook-signature headers), through a
// dialer that refuses internal addresses at connect time.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/rdev-hq/rdev/domain"
)

// The Standard Webhooks headers.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Sign returns the webhook-signature header value for a message: "v1," and
// the base64 HMAC-SHA256 of "id.timestamp.body" under each key, separated by
// spaces.
func Sign(keys [][]byte, id string, ts time.Time, body []byte) string {
	content := make([]byte, 0, len(id)+len(body)+22)
	content = append(content, id...)
	content = append(content, '.')
	content = strconv.AppendInt(content, ts.Unix(), 10)
	content = append(content, '.')
	content = append(content, body...)
	sigs := make([]string, 0, len(keys))
	for _, k := range keys {
		mac := hmac.New(sha256.New, k)
		mac.Write(content)
		sigs = append(sigs, "v1,"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return strings.Join(sigs, " ")
}

// setHeaders signs a and sets the Standard Webhooks headers on h. It returns
// EINVALID for a malformed secret and for an attempt without one.
func setHeaders(h http.Header, a domain.WebhookAttempt) error {
	if len(a.Secrets) == 0 {
		return domain.Errorf(domain.EINVALID, "secret: a webhook message needs a signing secret")
	}
	keys := make([][]byte, 0, len(a.Secrets))
	for _, s := range a.Secrets {
		k, err := domain.DecodeWebhookSecret(s)
		if err != nil {
			return err
		}
		keys = append(keys, k)
	}
	h.Set(HeaderID, a.MessageID)
	h.Set(HeaderTimestamp, strconv.FormatInt(a.Timestamp.Unix(), 10))
	h.Set(HeaderSignature, Sign(keys, a.MessageID, a.Timestamp, a.Body))
	return nil
}
