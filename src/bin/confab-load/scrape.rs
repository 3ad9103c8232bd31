//! Reading a server's Prometheus endpoint (`--scrape`, fanout mode) at the
//! start and end of the measured window: the increase of every counter
//! (`*_total` samples, and a histogram's `*_count` and `*_sum`) over the
//! window, e.g. a cluster node's bus messages and gap fills, or its
//! commits, next to the messages published in the same window.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::http::HttpBase;

/// Counter samples by name (labels included), as read once.
pub type Counters = BTreeMap<String, f64>;

/// The `*_total`, `*_count` and `*_sum` samples of a Prometheus text
/// exposition.
pub fn parse(text: &str) -> Counters {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            let base = name.split('{').next()?;
            if !["_total", "_count", "_sum"]
                .iter()
                .any(|s| base.ends_with(s))
            {
                return None;
            }
            Some((name.trim().to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// `url` with `/metrics` added when it has no path.
fn split(url: &str) -> (String, String) {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    match rest.find('/') {
        Some(i) => (format!("http://{}", &rest[..i]), rest[i..].to_string()),
        None => (format!("http://{rest}"), "/metrics".to_string()),
    }
}

/// Reads the counters of every URL (a URL that cannot be read gives `None`).
pub async fn read_all(urls: &[String]) -> Vec<Option<Counters>> {
    let mut out = Vec::with_capacity(urls.len());
    for url in urls {
        let (base, path) = split(url);
        let read = async {
            let http = HttpBase::parse(&base).await?;
            match http.get_text(&path).await? {
                (200, text) => Ok(parse(&text)),
                (status, _) => Err(format!("HTTP {status}")),
            }
        };
        out.push(match read.await {
            Ok(counters) => Some(counters),
            Err(e) => {
                eprintln!("confab-load: cannot read {url}: {e}");
                None
            }
        });
    }
    out
}

/// `[{"url": .., "increase": {counter: delta, ..}}, ..]`: the counters
/// that grew between the two readings (`null` where a reading failed).
pub fn deltas(urls: &[String], before: &[Option<Counters>], after: &[Option<Counters>]) -> Value {
    let rows: Vec<Value> = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let (Some(Some(a)), Some(Some(b))) = (before.get(i), after.get(i)) else {
                return json!({"url": url, "increase": null});
            };
            let grown: BTreeMap<&str, f64> = b
                .iter()
                .filter_map(|(name, &v)| {
                    let d = v - a.get(name).copied().unwrap_or(0.0);
                    (d != 0.0).then_some((name.as_str(), d))
                })
                .collect();
            json!({"url": url, "increase": grown})
        })
        .collect();
    Value::Array(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_their_increase() {
        let text = "# HELP confab_bus_received_total x\n# TYPE confab_bus_received_total counter\n\
                    confab_bus_received_total 10\nconfab_bus_connected 1\n\
                    confab_http_requests_total{code=\"200\"} 3\n\
                    confab_commit_seconds_bucket{le=\"0.001\"} 4\n\
                    confab_commit_seconds_sum 0.5\nconfab_commit_seconds_count 7\n";
        let a = parse(text);
        assert_eq!(a.len(), 4);
        assert_eq!(a["confab_commit_seconds_count"], 7.0);
        assert_eq!(a["confab_bus_received_total"], 10.0);
        assert_eq!(a["confab_http_requests_total{code=\"200\"}"], 3.0);
        let b = parse("confab_bus_received_total 25\nconfab_http_requests_total{code=\"200\"} 3\n");
        let urls = vec!["http://n1".to_string(), "http://n2".to_string()];
        let d = deltas(&urls, &[Some(a), None], &[Some(b), None]);
        assert_eq!(d[0]["increase"], json!({"confab_bus_received_total": 15.0}));
        assert!(d[1]["increase"].is_null());
        assert_eq!(
            split("http://127.0.0.1:9/metrics"),
            ("http://127.0.0.1:9".into(), "/metrics".into())
        );
        assert_eq!(
            split("http://127.0.0.1:9"),
            ("http://127.0.0.1:9".into(), "/metrics".into())
        );
    }
}
