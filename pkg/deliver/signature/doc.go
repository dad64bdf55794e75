// Package signature signs and verifies webhook requests as the Standard Webhooks specification
// (https://www.standardwebhooks.com/) describes them, so that a receiver can check them with any
// Standard Webhooks library:
//
//	webhook-id:        the message id, the same on every retry of one event (an idempotency key)
//	webhook-timestamp: Unix seconds of this attempt
//	webhook-signature: "v1,<base64 HMAC-SHA256 of id.timestamp.body>", one per secret, space-separated
//
// Secrets are written "whsec_" followed by the base64 of the key bytes; the HMAC key is the
// decoded part. Signing with several secrets (Signer with more than one Secret) produces one
// signature per secret, which is how a secret is rotated: sign with the new and the old one until
// every receiver knows the new one, then drop the old.
package signature
