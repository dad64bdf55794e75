// Package kafkaclient turns pgcdc's Kafka connection settings (brokers, kafka.tls, kafka.sasl) into
// the segmentio/kafka-go objects every Kafka-facing package uses, so that TLS and SASL work the same
// in all of them and no other package needs to know how:
//
//	kc, err := kafkaclient.New(ctx, kafkaclient.FromConfig(cfg.Kafka)) // loads certificates, secrets
//	writer := &kafka.Writer{Addr: kc.Addr(), Transport: kc.Transport(), ...}
//	admin := &kafka.Client{Addr: kc.Addr(), Transport: kc.Transport()}
//	reader := kafka.NewReader(kafka.ReaderConfig{Brokers: kc.Brokers(), Dialer: kc.Dialer(), ...})
//	group, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{Brokers: kc.Brokers(), Dialer: kc.Dialer(), ...})
//
// Its input, Settings, is plain data mirroring the configuration (FromConfig maps it); its output
// are kafka-go's *Transport (kafka.Client, kafka.Writer) and *Dialer (kafka.Reader,
// kafka.ConsumerGroup, kafka.DialLeader).
//
// TLS: a CA bundle (or the system's trust store), mutual TLS with a client certificate re-read at
// every handshake (renewal without restart), a server name, a minimum version, and
// insecure_skip_verify (warned about). The handshake is completed inside the dial function, so a
// certificate problem comes back as an *Error that names the setting to fix.
//
// SASL: PLAIN and SCRAM-SHA-256/512 (kafka-go's sasl/plain and sasl/scram; a password_file is re-read
// for every connection), AWS_MSK_IAM (kafka-go's sasl/aws_msk_iam_v2 with the standard AWS credential
// chain), and OAUTHBEARER (RFC 7628, implemented here) with the OAuth 2 client-credentials grant
// against a token endpoint, a fresh token for every connection. kafka-go never re-authenticates a
// connection: a broker with connections.max.reauth.ms closes it when the session ends, and the next
// request fails with a connection error that callers treat as transient (they retry, on a new
// connection with new credentials).
//
// Errors: Explain maps a failure to an *Error naming the setting to fix (untrusted CA, wrong host
// name, expired certificate, refused client certificate, a listener without TLS, refused
// credentials, a mechanism the listener does not offer); IsPermanent tells whether retrying can
// help. No error, log line or String of Settings contains a password, client secret or token: they
// are held as Secret, which prints as "xxxxx".
//
// Probe describes a live connection's security (TLS version and cipher, whether the broker's
// certificate was verified, the SASL mechanism and the principal where it is knowable) and
// Warnings lists what is unsafe (plaintext, unverified TLS, clear-text credentials), for `pgcdc
// check` and the warnings logged at every start.
package kafkaclient
