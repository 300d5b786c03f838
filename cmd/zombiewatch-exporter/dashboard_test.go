package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// dashboardQuery is one expression of the dashboard or the alert rules.
type dashboardQuery struct {
	where, expr  string
	mustHaveData bool
}

// dashboardQueries reads every panel's and variable's expression from
// deploy/grafana/zombiewatch.json and every alert's from
// deploy/prometheus/alerts.yml. Panels must return data; alerts only
// parse (they return data when they fire).
func dashboardQueries(t *testing.T) []dashboardQuery {
	t.Helper()
	data, err := os.ReadFile("../../deploy/grafana/zombiewatch.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Type    string
			Targets []struct{ Expr string }
		}
		Templating struct {
			List []struct {
				Name       string
				Definition string
			}
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("zombiewatch.json: %v", err)
	}
	var qs []dashboardQuery
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			qs = append(qs, dashboardQuery{"panel " + p.Title, tg.Expr, true})
		}
	}
	// label_values(METRIC, LABEL): the metric must carry the label.
	labelValues := regexp.MustCompile(`^label_values\((\w+), (\w+)\)$`)
	for _, v := range dash.Templating.List {
		if v.Definition == "" {
			continue
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(METRIC, LABEL)", v.Name, v.Definition)
			continue
		}
		qs = append(qs, dashboardQuery{"variable " + v.Name, "count by (" + m[2] + ") (" + m[1] + ")", true})
	}
	data, err = os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatal(err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			qs = append(qs, dashboardQuery{"alert " + r.Alert, r.Expr, false})
		}
	}
	return qs
}

// grafanaVars are the dashboard's variables as "All" selects them.
var grafanaVars = strings.NewReplacer("$instance", ".*", "$pod_uid", ".*", "$__rate_interval", "30s", "$__interval", "15s")

var (
	metricName = regexp.MustCompile(`\b(zombiewatch_\w+)`)
	matcher    = regexp.MustCompile(`(\w+)\s*(?:=~|!~|!=|=)\s*"`)
	grouping   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
)

// checkDashboard evaluates every query against the Prometheus at prom,
// which scrapes the exporter at metrics: each parses, uses only metric and
// label names the exporter publishes (and Prometheus's target labels), and
// (panels) returns data, unless noData names its metric with the reason
// this scenario lacks it.
func checkDashboard(t *testing.T, prom, metrics string, noData map[string]string) {
	t.Helper()
	names := promList(t, prom+"/api/v1/label/__name__/values")
	labels := []string{"instance", "job"}
	resp, err := http.Get(metrics)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "#") {
			continue
		}
		for _, m := range regexp.MustCompile(`[{,](\w+)="`).FindAllStringSubmatch(line, -1) {
			if !slices.Contains(labels, m[1]) {
				labels = append(labels, m[1])
			}
		}
	}
	for _, q := range dashboardQueries(t) {
		expr := grafanaVars.Replace(q.expr)
		var why string
		for _, m := range metricName.FindAllString(expr, -1) {
			if !slices.Contains(names, m) {
				if r, ok := noData[m]; ok {
					why = r
					continue
				}
				t.Errorf("%s: %s uses metric %s, which the exporter does not publish", q.where, q.expr, m)
			}
		}
		used := matcher.FindAllStringSubmatch(expr, -1)
		for _, g := range grouping.FindAllStringSubmatch(expr, -1) {
			for _, l := range strings.Split(g[1], ",") {
				used = append(used, []string{"", strings.TrimSpace(l)})
			}
		}
		for _, l := range used {
			if l[1] != "" && !slices.Contains(labels, l[1]) {
				t.Errorf("%s: %s uses label %s, which no series carries", q.where, q.expr, l[1])
			}
		}
		n, err := promCount(prom + "/api/v1/query?query=" + url.QueryEscape(expr))
		deadline := time.Now().Add(30 * time.Second)
		for err == nil && n == 0 && q.mustHaveData && why == "" && time.Now().Before(deadline) {
			time.Sleep(time.Second) // a rate needs two scrapes, a deriv a few
			n, err = promCount(prom + "/api/v1/query?query=" + url.QueryEscape(expr))
		}
		switch {
		case err != nil:
			t.Errorf("%s: %s: %v", q.where, q.expr, err)
		case n == 0 && q.mustHaveData && why == "":
			t.Errorf("%s: %s returns no data", q.where, q.expr)
		case n == 0 && why != "":
			t.Logf("%s: no data (%s)", q.where, why)
		default:
			t.Logf("%s: %d series", q.where, n)
		}
	}
}

// promCount runs an instant query and counts the series it returns; a
// query that does not parse is an error with Prometheus's message.
func promCount(api string) (int, error) {
	resp, err := http.Get(api)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Status, Error string
		Data          struct{ Result []json.RawMessage }
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	if r.Status != "success" {
		return 0, &promError{r.Error}
	}
	return len(r.Data.Result), nil
}

type promError struct{ msg string }

func (e *promError) Error() string { return "prometheus: " + e.msg }

func promList(t *testing.T, api string) []string {
	t.Helper()
	resp, err := http.Get(api)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct{ Data []string }
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r.Data
}
