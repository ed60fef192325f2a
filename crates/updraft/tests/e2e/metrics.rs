//! `GET /metrics`: Prometheus/OpenMetrics text with requests counted by route
//! template (never the raw path), update checks by outcome and kind, and stats
//! ingest counters, each with the exact value the traffic before it implies.

use crate::harness::*;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::BTreeMap;

#[derive(Debug, PartialEq)]
pub(crate) struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `k="v",k2="v2"` → map; `None` if malformed.
fn parse_labels(mut text: &str) -> Option<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    while !text.is_empty() {
        let (key, rest) = text.split_once("=\"")?;
        if !is_metric_name(key) || key.contains(':') {
            return None;
        }
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    escaped @ ('\\' | '"') => value.push(escaped),
                    _ => return None,
                },
                (_, c) => value.push(c),
            }
        };
        if labels.insert(key.to_string(), value).is_some() {
            return None;
        }
        text = &rest[end + 1..];
        text = match text.strip_prefix(',') {
            Some(more) if !more.is_empty() => more,
            Some(_) => return None,
            None if text.is_empty() => text,
            None => return None,
        };
    }
    Some(labels)
}

/// A strict reading of the text format: every line is a `# TYPE|HELP|UNIT`
/// comment, the final `# EOF`, or `name{labels} value`; panics on anything else.
fn parse_exposition(text: &str) -> Vec<Sample> {
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.last(), Some(&"# EOF"), "no final # EOF:\n{text}");
    let mut samples = Vec::new();
    for line in &lines[..lines.len() - 1] {
        if let Some(comment) = line.strip_prefix("# ") {
            let mut parts = comment.splitn(3, ' ');
            let keyword = parts.next().unwrap_or_default();
            let name = parts.next().unwrap_or_default();
            assert!(
                matches!(keyword, "TYPE" | "HELP" | "UNIT") && is_metric_name(name),
                "bad comment line: {line}"
            );
            if keyword == "TYPE" {
                let kind = parts.next().unwrap_or_default();
                assert!(
                    matches!(
                        kind,
                        "counter" | "gauge" | "histogram" | "info" | "summary" | "unknown"
                    ),
                    "bad type: {line}"
                );
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value is not a number: {line}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                let labels = parse_labels(inner).unwrap_or_else(|| panic!("bad labels: {line}"));
                (name, labels)
            }
            None => (series, BTreeMap::new()),
        };
        assert!(is_metric_name(name), "bad metric name: {line}");
        samples.push(Sample {
            name: name.to_string(),
            labels,
            value,
        });
    }
    samples
}

/// The value of the one sample with exactly these labels.
pub(crate) fn value_of(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.name == name && s.labels == wanted)
        .collect();
    assert!(found.len() <= 1, "duplicate series {name} {labels:?}");
    found.first().map(|s| s.value)
}

pub(crate) async fn scrape(s: &Server) -> (String, Vec<Sample>) {
    let resp = s
        .http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .expect("scrape");
    assert_eq!(resp.status().as_u16(), 200);
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = resp.text().await.expect("body");
    let samples = parse_exposition(&text);
    (text, samples)
}

fn event(action: &str) -> Value {
    with(
        device_body(),
        json!({"action": action, "version_name": "1.1.0", "old_version_name": "1.0.0", "timestamp": 1767225600000i64}),
    )
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_update_outcomes() {
    let s = Server::start().await;
    s.seed("1.1.0").await;

    let (st, b) = s.post("/updates", &device_body()).await;
    assert_eq!(st, 200);
    assert_plugin_success(&b);
    let (st, b) = s
        .post(
            "/updates",
            &with(device_body(), json!({"version_name": "1.1.0"})),
        )
        .await;
    assert_eq!(st, 200);
    assert_refusal(&b, "no_new_version_available", "up_to_date");
    // No public channel for Electron: nothing to resolve.
    let (st, b) = s.patch_production(json!({"electron": false})).await;
    assert_eq!(st, 200, "{b}");
    let (st, b) = s
        .post(
            "/plugin/updates",
            &with(device_body(), json!({"platform": "electron"})),
        )
        .await;
    assert_eq!(st, 200);
    assert_refusal(&b, "no_channel", "failed");
    let (st, b) = s.post_raw("/updates", b"{not json".to_vec()).await;
    assert_eq!(st, 400, "{b}");
    assert_eq!(b["error"], "invalid_json_parse_body");

    let (st, b) = s
        .post("/stats", &json!([event("set"), event("download_complete")]))
        .await;
    assert_eq!(st, 200, "{b}");

    let (st, _) = s.request(Method::GET, "/no/such/page", None).await;
    assert_eq!(st, 404);
    let (st, _) = s
        .api(Method::GET, &format!("/api/v1/apps/{APP}"), None)
        .await;
    assert_eq!(st, 200);

    let (text, samples) = scrape(&s).await;
    let requests = |route: &str, method: &str, status: &str| {
        value_of(
            &samples,
            "updraft_http_requests_total",
            &[("route", route), ("method", method), ("status", status)],
        )
    };
    assert_eq!(requests("/updates", "POST", "200"), Some(2.0), "{text}");
    assert_eq!(requests("/updates", "POST", "400"), Some(1.0), "{text}");
    assert_eq!(
        requests("/plugin/updates", "POST", "200"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(requests("/stats", "POST", "200"), Some(1.0), "{text}");
    assert_eq!(requests("unmatched", "GET", "404"), Some(1.0), "{text}");
    assert_eq!(
        requests("/api/v1/apps/{app_id}", "GET", "200"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(requests("/api/v1/apps", "POST", "201"), Some(1.0), "{text}");
    assert_eq!(
        requests("/api/v1/apps/{app_id}/channels", "POST", "201"),
        Some(1.0),
        "{text}"
    );
    // The scrape is counted once it is answered, so not in its own output.
    assert_eq!(requests("/metrics", "GET", "200"), None, "{text}");
    // Raw paths never become labels.
    assert!(!text.contains(APP), "{text}");
    assert!(!text.contains("/no/such/page"), "{text}");

    let checks = |outcome: &str, kind: &str| {
        value_of(
            &samples,
            "updraft_update_checks_total",
            &[("outcome", outcome), ("kind", kind)],
        )
    };
    assert_eq!(checks("get", "none"), Some(1.0), "{text}");
    assert_eq!(
        checks("no_new_version_available", "up_to_date"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(checks("no_channel", "failed"), Some(1.0), "{text}");
    assert_eq!(
        checks("invalid_json_parse_body", "failed"),
        Some(1.0),
        "{text}"
    );
    let total_checks: f64 = samples
        .iter()
        .filter(|s| s.name == "updraft_update_checks_total")
        .map(|s| s.value)
        .sum();
    assert_eq!(total_checks, 4.0, "{text}");

    assert_eq!(
        value_of(
            &samples,
            "updraft_http_request_duration_seconds_count",
            &[("route", "/updates")]
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value_of(
            &samples,
            "updraft_http_request_duration_seconds_bucket",
            &[("route", "/updates"), ("le", "+Inf")]
        ),
        Some(3.0),
        "{text}"
    );
    let scalar = |name: &str| value_of(&samples, name, &[]);
    assert_eq!(scalar("updraft_stats_events_committed_total"), Some(2.0));
    // One stats request, alone in its group commit.
    assert_eq!(scalar("updraft_stats_commits_total"), Some(1.0));
    assert_eq!(scalar("updraft_stats_rejected_busy_total"), Some(0.0));
    assert_eq!(scalar("updraft_stats_queue_depth"), Some(0.0));
    assert_eq!(scalar("updraft_download_bytes_total"), Some(0.0));
    assert_eq!(
        value_of(
            &samples,
            "updraft_database_errors_total",
            &[("operation", "api")]
        ),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value_of(
            &samples,
            "updraft_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        Some(1.0),
        "{text}"
    );
    let started = scalar("updraft_process_start_time_seconds").expect("start time");
    assert!(started > 1.7e9, "{started}");

    // The first scrape shows up in the second.
    let (text, samples) = scrape(&s).await;
    assert_eq!(
        value_of(
            &samples,
            "updraft_http_requests_total",
            &[("route", "/metrics"), ("method", "GET"), ("status", "200")]
        ),
        Some(1.0),
        "{text}"
    );
}

#[test]
fn the_exposition_parser_rejects_malformed_lines() {
    let good = "# TYPE a counter\na_total{x=\"1\",y=\"q\\\"z\"} 2\n# EOF\n";
    let samples = parse_exposition(good);
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].labels["y"], "q\"z");
    assert_eq!(samples[0].value, 2.0);
    for bad in [
        "a_total{x=\"1\"} two\n# EOF\n",
        "a_total{x=1} 2\n# EOF\n",
        "a_total{x=\"1\",} 2\n# EOF\n",
        "a total 2\n# EOF\n",
        "a_total 2\n",
        "# NOTE a\n# EOF\n",
    ] {
        let bad = bad.to_string();
        let outcome = std::panic::catch_unwind(move || parse_exposition(&bad));
        assert!(outcome.is_err(), "accepted a malformed exposition");
    }
}
