// Package config loads, defaults and validates the pgcdc configuration.
//
// A configuration is built in three layers, each overriding the one before:
//
//  1. defaults (Default; example.yaml in this directory documents every key
//     with its default and meaning),
//  2. a YAML file (Load's path; "" skips it),
//  3. environment variables (Load's env, normally os.Environ()).
//
// Load then derives postgres.spool_dir from the slot when it is not set and
// calls Validate; the result is ready to use:
//
//	cfg, err := config.Load(path, os.Environ())
//	if err != nil {
//		return err // every problem, one per line, each naming its key
//	}
//	connString, err := cfg.Postgres.ConnString() // never log it
//	log.Info().Str("dsn", cfg.Postgres.RedactedDSN()).Msg("connecting")
//
// # The YAML file
//
// Sections are postgres, tables, kafka, events, log and metrics; see example.yaml.
// Unknown and duplicate keys are errors naming the key and line, with a
// suggestion for likely typos. A key with an empty value keeps its default.
// Lists replace the default list. kafka.topic_config is merged over the
// default mapping key by key, so setting one topic config keeps
// retention.ms=-1 and cleanup.policy=delete unless they are set too.
// Durations are written with a unit ("500ms", "30s", "1m"); sizes as bytes
// or with a unit (see ByteSize: KB/MB/GB/TB are powers of 1000,
// KiB/MiB/GiB/TiB powers of 1024).
//
// # Environment variables
//
// Every key can be set by the variable PGCDC_<SECTION>_<KEY>: the dotted
// key with dots replaced by underscores, upper-cased (EnvName). For example
// postgres.dsn is PGCDC_POSTGRES_DSN, kafka.max_in_flight_bytes is
// PGCDC_KAFKA_MAX_IN_FLIGHT_BYTES and events.unavailable_value_placeholder
// is PGCDC_EVENTS_UNAVAILABLE_VALUE_PLACEHOLDER. EnvNames lists them all.
// Values use the same syntax as in YAML, with:
//
//   - booleans: true/false, 1/0, t/f (strconv.ParseBool);
//   - lists: comma-separated, blanks trimmed
//     (PGCDC_KAFKA_BROKERS=k1:9092,k2:9092);
//   - mappings: comma-separated key=value pairs, merged over the current
//     mapping (PGCDC_KAFKA_TOPIC_CONFIG=retention.ms=604800000,min.insync.replicas=2);
//     a piece without "=" continues the previous value, so
//     cleanup.policy=compact,delete works.
//
// A variable set to the empty string is treated as unset. A PGCDC_ variable
// that names no key is an error (typo protection), except PGCDC_TEST_*
// (reserved for tests) and PGCDC_CONFIG (reserved for the command to name
// the file). A value that does not parse is an error naming the variable.
//
// The password is best passed as PGCDC_POSTGRES_PASSWORD or
// postgres.password_file rather than inside the DSN; ConnString applies it
// (with postgres.sslmode, sslrootcert, sslcert and sslkey) and RedactedDSN
// (or Config.Redacted) gives a form that is safe to log. The Kafka secrets
// likewise: PGCDC_KAFKA_SASL_PASSWORD or kafka.sasl.password_file,
// PGCDC_KAFKA_SASL_OAUTH_CLIENT_SECRET or kafka.sasl.oauth.client_secret_file
// (ResolveSecret reads them). kafka.tls and kafka.sasl are turned into
// kafka-go connections by pkg/kafkaclient; docs/security.md has recipes.
//
// # Validation
//
// Validate reports every problem at once as errors.Join of *FieldError
// values (FieldErrors extracts them), each with the key and a message
// saying what is wrong and what is allowed, e.g.
//
//	kafka.brokers: required (set it in the file or PGCDC_KAFKA_BROKERS)
package config
