//! The NOC's files in `monitoring/`: the Prometheus alert rules pass
//! `promtool check rules` and their own unit tests (`promtool test rules`),
//! every PromQL expression of the Grafana dashboard parses, and both name
//! only metrics failoverd serves (rendered here by the crate's own
//! renderer, so renaming a metric breaks this test).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use wanflash_linequality::render_metrics;

mod common;
use common::{extra, recorder};

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../monitoring")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read `{}`: {e}", path.display()))
}

const RULES: &str = "prometheus/wanflash.rules.yml";
const RULE_TESTS: &str = "prometheus/wanflash.rules.test.yml";
const DASHBOARD: &str = "grafana/wanflash.json";

/// Series Prometheus makes itself, not failoverd.
const PROMETHEUS_OWN: [&str; 1] = ["up"];

/// Runs promtool in `dir`; panics with what it said unless it succeeds.
fn promtool_ok(promtool: &Path, args: &[&str], dir: &Path) -> String {
    let out = Command::new(promtool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{}`: {e}", promtool.display()));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "`promtool {}` in `{}` failed:\n{said}",
        args.join(" "),
        dir.display()
    );
    said
}

/// One entry of a rules file: its `alert:` or `record:` name and its keys
/// (nested ones such as `labels: severity:` flattened by key), block
/// scalars (`expr: |`) joined.
#[derive(Debug)]
struct Rule {
    name: String,
    alert: bool,
    keys: BTreeMap<String, String>,
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    for q in ['"', '\''] {
        if v.len() >= 2 && v.starts_with(q) && v.ends_with(q) {
            return v[1..v.len() - 1].to_owned();
        }
    }
    v.to_owned()
}

/// Reads the rules of a file written as `wanflash.rules.yml` is: one key
/// per line, block scalars for long expressions. promtool checks the YAML
/// itself; this only finds the expressions and annotations in it.
fn rules(text: &str) -> Vec<Rule> {
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    let mut out: Vec<Rule> = Vec::new();
    let mut rule_indent = 0;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim_start();
        i += 1;
        if let Some((kind, name)) = t
            .strip_prefix("- alert:")
            .map(|n| (true, n))
            .or_else(|| t.strip_prefix("- record:").map(|n| (false, n)))
        {
            rule_indent = indent(line);
            out.push(Rule {
                name: unquote(name),
                alert: kind,
                keys: BTreeMap::new(),
            });
            continue;
        }
        let Some(rule) = out.last_mut() else {
            continue;
        };
        if t.is_empty() || indent(line) <= rule_indent {
            continue;
        }
        let Some((key, value)) = t.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let value = if value.starts_with('|') || value.starts_with('>') {
            let own = indent(line);
            let mut block = Vec::new();
            while i < lines.len() && (lines[i].trim().is_empty() || indent(lines[i]) > own) {
                block.push(lines[i].trim());
                i += 1;
            }
            block.join("\n")
        } else {
            unquote(value)
        };
        rule.keys.insert(key.trim().to_owned(), value);
    }
    out
}

const AGGREGATIONS: [&str; 12] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
/// Followed by a list of label names in parentheses.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];
const OPERATORS: [&str; 8] = [
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
];

/// Skips from the opening `open` at `i` to just past its matching close,
/// stepping over quoted strings.
fn skip_group(c: &[char], mut i: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    while i < c.len() {
        match c[i] {
            '"' | '\'' | '`' => i = skip_string(c, i),
            ch if ch == open => {
                depth += 1;
                i += 1;
            }
            ch if ch == close => {
                depth -= 1;
                i += 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    i
}

fn skip_string(c: &[char], i: usize) -> usize {
    let q = c[i];
    let mut j = i + 1;
    while j < c.len() && c[j] != q {
        j += if c[j] == '\\' { 2 } else { 1 };
    }
    j + 1
}

/// The metric names a PromQL expression selects: identifiers outside
/// strings, label matchers and ranges that are neither functions,
/// aggregations, operators nor label lists (`by (path)`).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let c: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let next_non_space = |mut j: usize| {
        while j < c.len() && c[j].is_whitespace() {
            j += 1;
        }
        j
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '"' || ch == '\'' || ch == '`' {
            i = skip_string(&c, i);
        } else if ch == '{' {
            i = skip_group(&c, i, '{', '}');
        } else if ch == '[' {
            i = skip_group(&c, i, '[', ']');
        } else if ch == '#' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch.is_ascii_digit()
            || (ch == '.' && c.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                i += 1;
            }
        } else if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' {
            let start = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == ':') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let lower = word.to_ascii_lowercase();
            let after = next_non_space(i);
            if LABEL_LISTS.contains(&lower.as_str()) {
                if c.get(after) == Some(&'(') {
                    i = skip_group(&c, after, '(', ')');
                }
            } else if AGGREGATIONS.contains(&lower.as_str())
                || OPERATORS.contains(&lower.as_str())
                || c.get(after) == Some(&'(')
            {
                // A function, an aggregation or an operator.
            } else {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The metric names the page exposes: each `# TYPE` family, with
/// `_sum` and `_count` for summaries.
fn exposed(page: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in page.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else {
            continue;
        };
        names.insert(name.to_owned());
        if kind == "summary" || kind == "histogram" {
            names.insert(format!("{name}_sum"));
            names.insert(format!("{name}_count"));
        }
        if kind == "histogram" {
            names.insert(format!("{name}_bucket"));
        }
    }
    names
}

/// Every PromQL expression of the dashboard: (where, expression).
fn dashboard_exprs(dash: &serde_json::Value) -> Vec<(String, String)> {
    fn walk(panels: &serde_json::Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?");
            for t in p["targets"].as_array().into_iter().flatten() {
                let r = t["refId"].as_str().unwrap_or("?");
                let e = t["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("panel `{title}` target {r} has no `expr`"));
                out.push((format!("panel `{title}` target {r}"), e.to_owned()));
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dash["panels"], &mut out);
    out
}

/// Grafana's variables replaced by values PromQL parses, so promtool can
/// check the expression. A `$` left over is a variable this list lacks.
fn grafana_to_promql(expr: &str) -> String {
    let e = expr
        .replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
        .replace("${instance}", ".*")
        .replace("$instance", ".*");
    assert!(
        !e.contains('$'),
        "`{expr}` uses a Grafana variable crates/linequality/tests/alerts.rs cannot replace: add it to `grafana_to_promql`"
    );
    e
}

fn dashboard() -> serde_json::Value {
    let path = monitoring().join(DASHBOARD);
    serde_json::from_str(&read(&path))
        .unwrap_or_else(|e| panic!("`{}` is not JSON: {e}", path.display()))
}

#[test]
fn the_metric_name_reader_skips_functions_labels_and_ranges() {
    let names = metric_names(
        r#"max by (path) (wanflash_path_state{state="up", x="a}b"} * 3 or down_total)
          / on (instance) group_left (job) rate(foo_total{path=~"$p"}[5m:1m] offset 1h) > 1e-3
          and count without (c) (last_over_time(bar[15m])) > bool 0.5 unless sum(up) by (instance)"#,
    );
    assert_eq!(
        names,
        [
            "bar",
            "down_total",
            "foo_total",
            "up",
            "wanflash_path_state"
        ]
        .map(String::from)
        .into()
    );
}

#[test]
fn rules_and_dashboard_name_only_metrics_failoverd_serves() {
    let page = render_metrics(&recorder(), &extra());
    let mut known = exposed(&page);
    assert!(
        known.contains("wanflash_rtt_seconds_count") && known.contains("wanflash_path_state"),
        "{page}"
    );
    let text = read(&monitoring().join(RULES));
    let rules = rules(&text);
    known.extend(rules.iter().filter(|r| !r.alert).map(|r| r.name.clone()));
    known.extend(PROMETHEUS_OWN.map(String::from));

    let mut exprs: Vec<(String, String)> = rules
        .iter()
        .map(|r| {
            let e = r.keys.get("expr").unwrap_or_else(|| {
                panic!(
                    "rule `{}` in {RULES} has no `expr` this test can read",
                    r.name
                )
            });
            (format!("{RULES} rule `{}`", r.name), e.clone())
        })
        .collect();
    exprs.extend(dashboard_exprs(&dashboard()));
    // The template variable's query is `label_values(metric, label)`.
    for v in dashboard()["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if let Some(q) = v["query"]["query"].as_str() {
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|q| q.split(',').next())
                .unwrap_or(q);
            exprs.push((format!("variable `{}`", v["name"]), inner.to_owned()));
        }
    }
    let mut used = BTreeSet::new();
    for (what, e) in &exprs {
        let names = metric_names(e);
        assert!(!names.is_empty(), "{what}: no metric found in `{e}`");
        for n in names {
            assert!(
                known.contains(&n),
                "{what} uses `{n}`, which failoverd does not serve (renamed in crates/linequality/src/metrics.rs?): `{e}`"
            );
            used.insert(n);
        }
    }
    // What a NOC watches is all there.
    for n in [
        "wanflash_path_state",
        "wanflash_route_path",
        "wanflash_bond_member_in",
        "wanflash_probes_lost_total",
        "wanflash_rtt_seconds",
        "wanflash_loss_ratio",
        "wanflash_jitter_stddev_seconds",
        "wanflash_forced",
        "node_bonding_active",
        "node_network_receive_bytes_total",
        "node_network_receive_errs_total",
        "wanflash_errored_seconds_total",
        "wanflash_severely_errored_seconds_total",
        "wanflash_unavailable_seconds_total",
        "wanflash_clock_synchronised",
    ] {
        assert!(
            used.contains(n),
            "neither the rules nor the dashboard show `{n}`"
        );
    }
}

#[test]
fn every_alert_waits_has_a_severity_and_names_the_box_and_circuit() {
    let rules = rules(&read(&monitoring().join(RULES)));
    let alerts: Vec<&Rule> = rules.iter().filter(|r| r.alert).collect();
    let names: BTreeSet<&str> = alerts.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "WanflashCircuitDown",
            "WanflashCircuitUnavailable",
            "WanflashClockUnsynchronised",
            "WanflashLossOverSla",
            "WanflashMemberTakenOut",
            "WanflashMetricsUnreachable",
            "WanflashPathFailedOver",
            "WanflashRoutesForced",
            "WanflashSevereErroredSeconds",
        ]
        .into(),
        "the alerts of {RULES}"
    );
    for r in alerts {
        let key = |k: &str| {
            r.keys
                .get(k)
                .unwrap_or_else(|| panic!("alert `{}` in {RULES} has no `{k}`", r.name))
        };
        assert!(
            key("for").ends_with('m') || key("for").ends_with('h'),
            "alert `{}`: `for: {}` should be minutes or hours",
            r.name,
            key("for")
        );
        assert!(
            ["critical", "warning"].contains(&key("severity").as_str()),
            "alert `{}`: severity `{}`",
            r.name,
            key("severity")
        );
        for a in ["summary", "description"] {
            let text = key(a);
            assert!(
                text.contains("$labels.instance"),
                "alert `{}`: its {a} does not name the box: {text}",
                r.name
            );
            // The box-wide ones name no circuit.
            if !["WanflashMetricsUnreachable", "WanflashClockUnsynchronised"]
                .contains(&r.name.as_str())
            {
                assert!(
                    text.contains("$labels.circuit") || text.contains("$labels.path"),
                    "alert `{}`: its {a} does not name the circuit: {text}",
                    r.name
                );
            }
        }
    }
}

#[test]
fn the_dashboard_reads_one_prometheus_datasource_variable() {
    let dash = dashboard();
    let vars = dash["templating"]["list"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        vars.iter().any(|v| v["type"] == "datasource"
            && v["name"] == "DS_PROMETHEUS"
            && v["query"] == "prometheus"),
        "{DASHBOARD} has no `DS_PROMETHEUS` datasource variable"
    );
    let mut ids = BTreeSet::new();
    let mut panels: Vec<serde_json::Value> = dash["panels"].as_array().cloned().unwrap_or_default();
    let mut n = 0;
    while let Some(p) = panels.pop() {
        panels.extend(p["panels"].as_array().cloned().unwrap_or_default());
        let title = p["title"].as_str().unwrap_or("?").to_owned();
        assert!(
            ids.insert(p["id"].to_string()),
            "panel id {} twice",
            p["id"]
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(
            p["datasource"]["uid"], "${DS_PROMETHEUS}",
            "panel `{title}`"
        );
        let mut refs = BTreeSet::new();
        for t in p["targets"].as_array().into_iter().flatten() {
            assert_eq!(
                t["datasource"]["uid"], "${DS_PROMETHEUS}",
                "panel `{title}`"
            );
            assert!(
                refs.insert(t["refId"].to_string()),
                "panel `{title}`: refId twice"
            );
            n += 1;
        }
        assert!(!refs.is_empty(), "panel `{title}` has no query");
    }
    assert!(n >= 20, "{n} queries");
}

#[test]
fn rules_pass_promtool_check_and_their_unit_tests() {
    let Some(promtool) = common::promtool() else {
        return;
    };
    let dir = monitoring();
    let said = promtool_ok(&promtool, &["check", "rules", RULES], &dir);
    let count = rules(&read(&dir.join(RULES))).len();
    assert!(
        said.contains(&format!("SUCCESS: {count} rules found")),
        "this test read {count} rules, promtool said: {said}"
    );
    let said = promtool_ok(&promtool, &["test", "rules", RULE_TESTS], &dir);
    assert!(said.contains("SUCCESS"), "{said}");
}

#[test]
fn every_dashboard_expression_parses() {
    let Some(promtool) = common::promtool() else {
        return;
    };
    let exprs = dashboard_exprs(&dashboard());
    let mut yaml = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (what, e)) in exprs.iter().enumerate() {
        let quoted = serde_json::to_string(&grafana_to_promql(e)).unwrap();
        yaml.push_str(&format!(
            "      # {what}\n      - record: dashboard:expr_{i}\n        expr: {quoted}\n"
        ));
    }
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("dashboard.rules.yml"), &yaml).unwrap();
    let said = promtool_ok(
        &promtool,
        &["check", "rules", "dashboard.rules.yml"],
        tmp.path(),
    );
    assert!(
        said.contains(&format!("SUCCESS: {} rules found", exprs.len())),
        "{said}\n{yaml}"
    );
}
