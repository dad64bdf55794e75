// Package securitytest provides the servers of pgcdc's security tests, and runs them: one Kafka
// broker JVM with a listener per security setup (SASL_SSL with SCRAM and PLAIN, SSL with required
// client certificates, SASL_PLAINTEXT with PLAIN, OAUTHBEARER against an identity provider the test
// serves, an SSL listener with an expired certificate, and a SCRAM listener with a short
// connections.max.reauth.ms), StandardAuthorizer with ACLs, and a PostgreSQL that only accepts TLS
// (hostssl lines, scram-sha-256 and cert authentication). Certificates are made with crypto/x509
// (internal/testcerts); SCRAM users are created at storage format time (KIP-900).
//
// The tests build the real pgcdc binary and run its commands as processes, then look for the
// fixture's secrets in everything pgcdc wrote (logs at debug level, check and status output, the
// metrics endpoint, a goroutine dump, its command line).
//
// Other tests that need a secured broker (a consumer, say) can use Start too.
package securitytest
