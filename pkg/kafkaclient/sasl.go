package kafkaclient

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/aws_msk_iam_v2"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// buildMechanism returns the SASL mechanism of s (nil: none) and, for aws-msk-iam, the AWS
// credentials it signs with.
func buildMechanism(ctx context.Context, s SASL) (sasl.Mechanism, aws.CredentialsProvider, error) {
	switch s.Mechanism {
	case "":
		return nil, nil, nil
	case "plain", "scram-sha-256", "scram-sha-512":
		if s.Username == "" {
			return nil, nil, &Error{Setting: "kafka.sasl.username", Permanent: true, Msg: "required for mechanism " + s.Mechanism}
		}
		build := func() (sasl.Mechanism, error) {
			pw, err := resolve("kafka.sasl.password", s.Password, s.PasswordFile)
			if err != nil {
				return nil, &Error{Setting: "kafka.sasl.password_file", Permanent: true, Msg: "cannot read the password", Err: err}
			}
			if pw == "" {
				return nil, &Error{Setting: "kafka.sasl.password", Permanent: true, Msg: "required for mechanism " + s.Mechanism}
			}
			switch s.Mechanism {
			case "plain":
				return plain.Mechanism{Username: s.Username, Password: pw}, nil
			case "scram-sha-256":
				return scram.Mechanism(scram.SHA256, s.Username, pw)
			default:
				return scram.Mechanism(scram.SHA512, s.Username, pw)
			}
		}
		m, err := build()
		if err != nil {
			return nil, nil, err
		}
		if s.PasswordFile == "" {
			return m, nil, nil
		}
		return &reloading{name: m.Name(), build: build}, nil, nil
	case "aws-msk-iam":
		var opts []func(*awsconfig.LoadOptions) error
		if s.AWSRegion != "" {
			opts = append(opts, awsconfig.WithRegion(s.AWSRegion))
		}
		cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return nil, nil, &Error{Setting: "kafka.sasl.mechanism aws-msk-iam", Permanent: true, Msg: "cannot load the AWS configuration (AWS_PROFILE, ~/.aws/config)", Err: err}
		}
		if cfg.Region == "" {
			return nil, nil, &Error{Setting: "kafka.sasl.aws_region", Permanent: true, Msg: "no AWS region: set kafka.sasl.aws_region (or AWS_REGION) to the MSK cluster's region"}
		}
		return aws_msk_iam_v2.NewMechanism(cfg), cfg.Credentials, nil
	case "oauthbearer":
		m, err := newOAuthBearer(s.OAuth)
		if err != nil {
			return nil, nil, err
		}
		return m, nil, nil
	}
	return nil, nil, &Error{Setting: "kafka.sasl.mechanism", Permanent: true,
		Msg: fmt.Sprintf("invalid value %q (allowed: plain, scram-sha-256, scram-sha-512, aws-msk-iam, oauthbearer)", s.Mechanism)}
}

// reloading builds its mechanism anew for every connection, so that a password file replaced by a
// secret rotation is used by the next connection without a restart.
type reloading struct {
	name  string
	build func() (sasl.Mechanism, error)
}

func (r *reloading) Name() string { return r.name }

func (r *reloading) Start(ctx context.Context) (sasl.StateMachine, []byte, error) {
	m, err := r.build()
	if err != nil {
		return nil, nil, err
	}
	return m.Start(ctx)
}

// awsSource names where the AWS chain found credentials (e.g. EnvConfigCredentials), for check.
func awsSource(ctx context.Context, p aws.CredentialsProvider) (string, error) {
	if p == nil {
		return "", errors.New("no AWS credentials provider")
	}
	c, err := p.Retrieve(ctx)
	if err != nil {
		return "", &Error{Setting: "kafka.sasl.mechanism aws-msk-iam", Permanent: true, Err: err,
			Msg: "the AWS credential chain found no credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, web identity, container or instance role)"}
	}
	return c.Source, nil
}
