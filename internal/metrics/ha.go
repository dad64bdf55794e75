package metrics

import "github.com/prometheus/client_golang/prometheus"

// haMetrics are the high-availability metrics (ha.enabled): whether this process is the active
// one, and how many takeovers it made.
type haMetrics struct {
	takeovers prometheus.Counter
}

func newHA(m *Metrics) *haMetrics {
	h := &haMetrics{takeovers: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "pgcdc_ha_takeovers_total",
		Help: "Times this process took the slot's lease from an active process whose heartbeat fell silent (ha.enabled).",
	})}
	m.reg.MustRegister(h.takeovers, prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "pgcdc_ha_active",
		Help: "1 while this process is the active one (it holds the slot's lease, or ha is off), 0 while it waits as a standby.",
	}, func() float64 { m.mu.Lock(); defer m.mu.Unlock(); return b2f(!m.standby) }))
	return h
}

// Standby records that this process waits for the slot's lease; why says on whom (for /readyz).
func (m *Metrics) Standby(why string) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.standby, m.standbyWhy = true, why
}

// Active records that this process holds the slot's lease; tookOver counts a takeover.
func (m *Metrics) Active(tookOver bool) {
	if m == nil {
		return
	}
	if tookOver {
		m.ha.takeovers.Inc()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.standby, m.standbyWhy = false, ""
}
