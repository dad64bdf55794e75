package main

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/pgcdc/pgcdc/config"
	"github.com/pgcdc/pgcdc/pkg/kafkaclient"
)

// logKafkaWarnings logs, at every start, what makes the Kafka connection unsafe (plaintext,
// insecure_skip_verify, clear-text credentials, a client certificate about to expire). A settings
// problem is left for the command's own connection attempt to report.
func logKafkaWarnings(log zerolog.Logger, k config.KafkaConfig, brokers []string) {
	s := kafkaclient.FromConfig(k)
	s.Brokers = brokers
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kc, err := kafkaclient.New(ctx, s)
	if err != nil {
		return
	}
	for _, w := range kc.Warnings() {
		log.Warn().Str("fix", w.Fix).Msg(w.Msg)
	}
}
