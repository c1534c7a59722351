package api

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// registry holds gpt2d's metrics in a prometheus/client_golang Registry,
// with the Go runtime's collector (GC, goroutines, memory) and the
// process collector (RSS, CPU, open file descriptors) beside them, and
// the peak RSS where the system gives it.
// GET /metrics writes it in the Prometheus text format through promhttp.
//
// The methods below are the one place metrics are registered (see
// newTelemetry); they panic on a duplicate name, a programming error
// found by any test that builds a Server. Updating and scraping metrics
// is safe for concurrent use.
type registry struct {
	reg *prometheus.Registry
}

func newRegistry() *registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if _, ok := peakRSSBytes(); ok {
		// Beside process_resident_memory_bytes: what the server's memory
		// budget (weights + KV in use + 100 MB) is held to.
		r.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gpt2d_peak_resident_memory_bytes",
			Help: "Peak resident set size of the process in bytes (getrusage maxrss)."},
			func() float64 { v, _ := peakRSSBytes(); return v }))
	}
	return &registry{reg: r}
}

// counter registers a counter family with the given label names. Label
// values must come from small fixed sets (routes, statuses, reasons),
// never from user input, or the series would grow without bound.
func (r *registry) counter(name, help string, labels ...string) *counterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	r.reg.MustRegister(c)
	if len(labels) == 0 {
		c.WithLabelValues() // expose the one series before the first event
	}
	return &counterVec{c}
}

// histogram registers a histogram family with the given bucket upper
// bounds (ascending, without +Inf) and label names.
func (r *registry) histogram(name, help string, buckets []float64, labels ...string) *histogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels)
	r.reg.MustRegister(h)
	if len(labels) == 0 {
		h.WithLabelValues() // expose the one series before the first observation
	}
	return &histogramVec{h}
}

// gauge registers a gauge the program sets.
func (r *registry) gauge(name, help string) *gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	r.reg.MustRegister(g)
	return &gauge{g}
}

// valueFunc registers a gauge or counter (typ) whose value fn returns at
// scrape time.
func (r *registry) valueFunc(name, help, typ string, fn func() float64) {
	if typ == "counter" {
		r.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, fn))
		return
	}
	r.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

// counterVec is a counter family: one running total per label values.
type counterVec struct{ v *prometheus.CounterVec }

// add adds delta (≥ 0) to the series of the label values.
func (c *counterVec) add(delta float64, values ...string) {
	c.v.WithLabelValues(cloneAll(values)...).Add(delta)
}

func (c *counterVec) inc(values ...string) { c.add(1, values...) }

// init creates the series of the label values at 0, so that they are
// exposed (and rates can be computed) before the first event.
func (c *counterVec) init(values ...string) { c.add(0, values...) }

// histogramVec is a histogram family.
type histogramVec struct{ v *prometheus.HistogramVec }

// observe records x in the series of the label values.
func (h *histogramVec) observe(x float64, values ...string) {
	h.v.WithLabelValues(cloneAll(values)...).Observe(x)
}

// gauge is a single value the program sets.
type gauge struct{ g prometheus.Gauge }

func (g *gauge) set(v float64) { g.g.Set(v) }

// cloneAll copies label values into memory of their own: a series keeps
// the values that created it, and values taken from a request (its
// method, say) may point into buffers fasthttp reuses.
func cloneAll(values []string) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = strings.Clone(v)
	}
	return out
}
