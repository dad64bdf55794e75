package replay

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// connPool is a fixed set of target connections (replay needs no more than its workers plus one
// for the catalog).
type connPool struct {
	conns chan *pgx.Conn
	all   []*pgx.Conn
}

func newConnPool(ctx context.Context, cfg *pgx.ConnConfig, n int) (*connPool, error) {
	p := &connPool{conns: make(chan *pgx.Conn, n)}
	for i := 0; i < n; i++ {
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			p.close()
			return nil, fmt.Errorf("replay: connect to the target (%s:%d/%s): %w", cfg.Host, cfg.Port, cfg.Database, err)
		}
		p.all = append(p.all, c)
		p.conns <- c
	}
	return p, nil
}

// with runs fn on a connection of the pool. A connection that fn leaves broken is replaced.
func (p *connPool) with(ctx context.Context, fn func(*pgx.Conn) error) error {
	var c *pgx.Conn
	select {
	case c = <-p.conns:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { p.conns <- c }()
	return fn(c)
}

func (p *connPool) close() {
	for _, c := range p.all {
		_ = c.Close(context.Background())
	}
}
