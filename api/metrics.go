package api

import (
	"bufio"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// registry holds metrics and writes them in the Prometheus text
// exposition format, version 0.0.4. It is deliberately small — counters
// and histograms with labels, gauges, and values read from a function at
// scrape time — which is all gpt2d needs, without client_golang's
// dependencies.
//
// Metrics are registered while the Server is built, before it serves;
// updating and writing them is safe for concurrent use.
type registry struct {
	metrics []interface{ write(*bufio.Writer) }
}

// contentTypeMetrics is the media type of the exposition.
const contentTypeMetrics = "text/plain; version=0.0.4; charset=utf-8"

// writeTo writes every metric, in registration order.
func (r *registry) writeTo(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, m := range r.metrics {
		m.write(bw)
	}
	return bw.Flush()
}

// counter registers a counter family with the given label names. Label
// values must come from small fixed sets (routes, statuses, reasons),
// never from user input, or the series would grow without bound.
func (r *registry) counter(name, help string, labels ...string) *counterVec {
	c := &counterVec{name: name, help: help, labels: labels, series: map[string]*counterSeries{}}
	r.metrics = append(r.metrics, c)
	return c
}

// histogram registers a histogram family with the given bucket upper
// bounds (ascending, without +Inf) and label names.
func (r *registry) histogram(name, help string, buckets []float64, labels ...string) *histogramVec {
	h := &histogramVec{name: name, help: help, labels: labels, buckets: buckets, series: map[string]*histSeries{}}
	if len(labels) == 0 { // expose the one series before the first observation
		h.series[""] = &histSeries{counts: make([]uint64, len(buckets))}
	}
	r.metrics = append(r.metrics, h)
	return h
}

// gauge registers a gauge the program sets.
func (r *registry) gauge(name, help string) *gauge {
	g := &gauge{name: name, help: help}
	r.metrics = append(r.metrics, g)
	return g
}

// valueFunc registers a gauge or counter (typ) whose value fn returns at
// scrape time.
func (r *registry) valueFunc(name, help, typ string, fn func() float64) {
	r.metrics = append(r.metrics, &funcMetric{name: name, help: help, typ: typ, fn: fn})
}

// counterVec is a counter family: one running total per label values.
type counterVec struct {
	name, help string
	labels     []string

	mu     sync.Mutex
	series map[string]*counterSeries
}

type counterSeries struct {
	values []string
	v      float64
}

// add adds delta (≥ 0) to the series of the label values.
func (c *counterVec) add(delta float64, values ...string) {
	key := strings.Join(values, "\xff")
	c.mu.Lock()
	s, ok := c.series[key]
	if !ok {
		s = &counterSeries{values: cloneAll(values)}
		c.series[key] = s
	}
	s.v += delta
	c.mu.Unlock()
}

func (c *counterVec) inc(values ...string) { c.add(1, values...) }

// init creates the series of the label values at 0, so that they are
// exposed (and rates can be computed) before the first event.
func (c *counterVec) init(values ...string) { c.add(0, values...) }

func (c *counterVec) write(w *bufio.Writer) {
	writeHeader(w, c.name, c.help, "counter")
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range sortedKeys(c.series) {
		s := c.series[k]
		writeSample(w, c.name, c.labels, s.values, "", "", s.v)
	}
}

// histogramVec is a histogram family.
type histogramVec struct {
	name, help string
	labels     []string
	buckets    []float64

	mu     sync.Mutex
	series map[string]*histSeries
}

type histSeries struct {
	values []string
	counts []uint64 // per bucket, not cumulative
	count  uint64
	sum    float64
}

// observe records x in the series of the label values.
func (h *histogramVec) observe(x float64, values ...string) {
	key := strings.Join(values, "\xff")
	i, _ := slices.BinarySearch(h.buckets, x) // the first bucket with bound ≥ x
	h.mu.Lock()
	s, ok := h.series[key]
	if !ok {
		s = &histSeries{values: cloneAll(values), counts: make([]uint64, len(h.buckets))}
		h.series[key] = s
	}
	if i < len(s.counts) {
		s.counts[i]++
	}
	s.count++
	s.sum += x
	h.mu.Unlock()
}

func (h *histogramVec) write(w *bufio.Writer) {
	writeHeader(w, h.name, h.help, "histogram")
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, k := range sortedKeys(h.series) {
		s := h.series[k]
		var cum uint64
		for i, bound := range h.buckets {
			cum += s.counts[i]
			writeSample(w, h.name+"_bucket", h.labels, s.values, "le", formatFloat(bound), float64(cum))
		}
		writeSample(w, h.name+"_bucket", h.labels, s.values, "le", "+Inf", float64(s.count))
		writeSample(w, h.name+"_sum", h.labels, s.values, "", "", s.sum)
		writeSample(w, h.name+"_count", h.labels, s.values, "", "", float64(s.count))
	}
}

// gauge is a single value the program sets.
type gauge struct {
	name, help string
	mu         sync.Mutex
	v          float64
}

func (g *gauge) set(v float64) {
	g.mu.Lock()
	g.v = v
	g.mu.Unlock()
}

func (g *gauge) write(w *bufio.Writer) {
	g.mu.Lock()
	v := g.v
	g.mu.Unlock()
	writeHeader(w, g.name, g.help, "gauge")
	writeSample(w, g.name, nil, nil, "", "", v)
}

// funcMetric is a value read at scrape time.
type funcMetric struct {
	name, help, typ string
	fn              func() float64
}

func (f *funcMetric) write(w *bufio.Writer) {
	writeHeader(w, f.name, f.help, f.typ)
	writeSample(w, f.name, nil, nil, "", "", f.fn())
}

// cloneAll copies label values into memory of their own: values taken
// from a request (its method, say) may point into buffers fasthttp reuses.
func cloneAll(values []string) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = strings.Clone(v)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func writeHeader(w *bufio.Writer, name, help, typ string) {
	w.WriteString("# HELP " + name + " " + helpEscaper.Replace(help) + "\n")
	w.WriteString("# TYPE " + name + " " + typ + "\n")
}

// writeSample writes one line: name{label="value",...,extra="value"} v.
func writeSample(w *bufio.Writer, name string, labels, values []string, extraLabel, extraValue string, v float64) {
	w.WriteString(name)
	if len(labels) > 0 || extraLabel != "" {
		w.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				w.WriteByte(',')
			}
			w.WriteString(l + `="` + labelEscaper.Replace(values[i]) + `"`)
		}
		if extraLabel != "" {
			if len(labels) > 0 {
				w.WriteByte(',')
			}
			w.WriteString(extraLabel + `="` + extraValue + `"`)
		}
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
