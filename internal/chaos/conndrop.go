package chaos

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// tcpConn is one established TCP connection of a process on 127.0.0.1.
type tcpConn struct {
	localPort, remotePort int
}

// tcpConns lists the established IPv4 connections of process pid whose remote port is one of ports.
func tcpConns(pid int, ports []int) ([]tcpConn, error) {
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	for _, fd := range fds {
		link, err := os.Readlink(filepath.Join(fmt.Sprintf("/proc/%d/fd", pid), fd.Name()))
		if err == nil && strings.HasPrefix(link, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []tcpConn
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != "01" || !inodes[fields[9]] {
			continue
		}
		port := func(addr string) int {
			_, hex, _ := strings.Cut(addr, ":")
			p, _ := strconv.ParseInt(hex, 16, 32)
			return int(p)
		}
		c := tcpConn{localPort: port(fields[1]), remotePort: port(fields[2])}
		if slices.Contains(ports, c.remotePort) {
			out = append(out, c)
		}
	}
	return out, sc.Err()
}

var socketDestroy struct {
	once sync.Once
	ok   bool
}

// canDestroySockets reports whether `ss -K` aborts sockets here (it needs CAP_NET_ADMIN and a kernel
// with SOCK_DESTROY): it tries on a connection of its own.
func canDestroySockets() bool {
	socketDestroy.once.Do(func() {
		if _, err := exec.LookPath("ss"); err != nil {
			return
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return
		}
		defer ln.Close()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		if peer, err := ln.Accept(); err == nil {
			defer peer.Close()
		}
		_ = exec.Command("ss", "-K", "-t", "src", c.LocalAddr().String(), "dst", ln.Addr().String()).Run()
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, err = c.Read(make([]byte, 1))
		var nerr net.Error
		socketDestroy.ok = err != nil && !(errors.As(err, &nerr) && nerr.Timeout())
	})
	return socketDestroy.ok
}

// dropConnections breaks every connection of pgcdc at once, as a network failure would: with `ss -K`
// the kernel aborts each established socket of the pgcdc process to PostgreSQL and to the brokers
// (the peers get a reset); without the privilege for it, pgcdc's PostgreSQL backends are terminated
// instead. Counted when connections were broken and another walsender holds the slot.
func (r *run) dropConnections(ctx context.Context, f *Fault) error {
	var walsender int32
	var how string
	for attempt := 0; ; attempt++ {
		// Without the lifecycle lock, so that the supervisor can restart a pgcdc that failed at
		// start-up meanwhile.
		if err := r.srv.waitActive(ctx, r.conn, 3*time.Minute); err != nil {
			return err
		}
		var err error
		walsender, how, err = r.dropOnce(ctx, f)
		if err == nil && how != "" {
			break
		}
		if err != nil {
			return err
		}
		if attempt == 100 {
			return errors.New("no running pgcdc with a walsender to drop the connections of, 100 times")
		}
		if err := sleepCtx(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
	newWS, err := r.waitNewWalsender(ctx, walsender)
	if err != nil {
		return err
	}
	if f.Ceil, err = r.srv.walFlush(ctx); err != nil {
		return err
	}
	f.Evidence = fmt.Sprintf("%s; walsender pid %d gone, slot now held by walsender pid %d", how, walsender, newWS)
	return nil
}

// dropOnce breaks the connections of the running pgcdc; it returns "" (try again) when no pgcdc runs
// or no walsender holds the slot right now.
func (r *run) dropOnce(ctx context.Context, f *Fault) (int32, string, error) {
	r.conn.life.Lock()
	defer r.conn.life.Unlock()
	if r.conn.ha { // the active one's connections, once a takeover under way is over
		if _, _, err := r.conn.pair(ctx, 3*time.Minute); err != nil {
			return 0, "", err
		}
	}
	pid, running := r.conn.running()
	walsender, err := r.srv.activePID(ctx)
	if err != nil || !running || walsender == 0 {
		return 0, "", err
	}
	if f.Floor, err = r.srv.confirmedFlush(ctx); err != nil {
		return 0, "", err
	}
	if !canDestroySockets() {
		var n int
		err := r.srv.do(ctx, func(ctx context.Context, db *pgx.Conn) error {
			return db.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE application_name = 'pgcdc' AND datname = current_database()`).Scan(&n)
		})
		return walsender, fmt.Sprintf("%d PostgreSQL backends of pgcdc terminated (no privilege to abort sockets)", n), err
	}
	ports := []int{r.srv.pg.Port}
	for _, b := range r.srv.kafka.Brokers {
		ports = append(ports, b.Port)
	}
	conns, err := tcpConns(pid, ports)
	if err != nil {
		return 0, "", nil // the process just ended: try again
	}
	pg, brokers := 0, 0
	for _, c := range conns {
		out, err := exec.CommandContext(ctx, "ss", "-K", "-t", "src", fmt.Sprintf("127.0.0.1:%d", c.localPort), "dst", fmt.Sprintf("127.0.0.1:%d", c.remotePort)).CombinedOutput()
		if err != nil {
			return 0, "", fmt.Errorf("ss -K: %v: %s", err, out)
		}
		if c.remotePort == r.srv.pg.Port {
			pg++
		} else {
			brokers++
		}
	}
	// A socket busy in the kernel at that instant can escape one SOCK_DESTROY: abort the survivors
	// again, a few times.
	for round := 0; ; round++ {
		left, err := tcpConns(pid, ports)
		if err != nil {
			return 0, "", err
		}
		var survivors []tcpConn
		for _, c := range left {
			if slices.Contains(conns, c) {
				survivors = append(survivors, c)
			}
		}
		if len(survivors) == 0 {
			break
		}
		if round == 5 {
			return 0, "", fmt.Errorf("connection %d->%d of pgcdc survived ss -K %d times", survivors[0].localPort, survivors[0].remotePort, round+1)
		}
		time.Sleep(50 * time.Millisecond)
		for _, c := range survivors {
			_ = exec.CommandContext(ctx, "ss", "-K", "-t", "src", fmt.Sprintf("127.0.0.1:%d", c.localPort), "dst", fmt.Sprintf("127.0.0.1:%d", c.remotePort)).Run()
		}
	}
	if pg == 0 {
		return 0, "", nil // between two connections: try again
	}
	return walsender, fmt.Sprintf("%d TCP connections of pgcdc pid %d aborted by the kernel (ss -K): %d to PostgreSQL, %d to brokers", pg+brokers, pid, pg, brokers), nil
}
