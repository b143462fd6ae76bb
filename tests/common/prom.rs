//! Reading what a Prometheus server would scrape: a plain HTTP/1.0 GET over
//! TCP, and the text exposition format parsed by `prometheus-parse`, with
//! every line checked so that nothing the crate skips goes unnoticed.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use prometheus_parse::{LineInfo, Scrape, Value};

/// A series: the metric's name and its labels, sorted.
pub type Key = (String, Vec<(String, String)>);

pub fn key(name: &str, labels: &[(&str, &str)]) -> Key {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    l.sort();
    (name.to_string(), l)
}

/// An HTTP answer: the status, the headers (names lower-cased), the body.
pub struct Http {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Http {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path HTTP/1.0` to `addr`; the server closes after the answer.
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<Http> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let raw = String::from_utf8(raw).expect("the answer is UTF-8");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a whole HTTP answer");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Http {
        status,
        headers,
        body: body.to_string(),
    })
}

/// A parsed exposition.
#[derive(Debug)]
pub struct Scraped {
    /// Counters, gauges, and the `_sum`/`_count` of histograms.
    pub values: BTreeMap<Key, f64>,
    /// Histograms: `(le, cumulative count)` in the order written.
    pub histograms: BTreeMap<Key, Vec<(f64, f64)>>,
    /// The TYPE of each family.
    pub types: BTreeMap<String, String>,
}

impl Scraped {
    /// The value of a series; panics naming the series of that metric
    /// there are, when it is missing.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let k = key(name, labels);
        match self.values.get(&k) {
            Some(v) => *v,
            None => panic!("no series {k:?}; {name} has: {:?}", self.series_of(name)),
        }
    }

    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.values.contains_key(&key(name, labels))
    }

    pub fn series_of(&self, name: &str) -> Vec<&Key> {
        self.values.keys().filter(|(n, _)| n == name).collect()
    }

    /// Every series (histograms included) with `label="value"`.
    pub fn with_label(&self, label: &str, value: &str) -> Vec<&Key> {
        self.values
            .keys()
            .chain(self.histograms.keys())
            .filter(|(_, l)| l.iter().any(|(k, v)| k == label && v == value))
            .collect()
    }
}

/// Parses `text` with `prometheus-parse`, after checking that every line is
/// a `# HELP`, a `# TYPE` or a sample the crate reads whole (a name, labels
/// that are `name="value"` pairs, a float value and no timestamp), and that
/// the crate kept every sample line.
pub fn parse(text: &str) -> Scraped {
    assert!(
        text.ends_with('\n'),
        "the exposition must end with a newline"
    );
    let mut sample_lines = 0usize;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        match LineInfo::parse(line) {
            LineInfo::Doc { .. } => assert!(line.starts_with("# HELP "), "line {n}: {line}"),
            LineInfo::Type { .. } => assert!(line.starts_with("# TYPE "), "line {n}: {line}"),
            LineInfo::Sample {
                metric_name,
                labels,
                value,
                timestamp,
            } => {
                sample_lines += 1;
                assert!(
                    !metric_name.is_empty() && !line.starts_with('#'),
                    "line {n}: {line}"
                );
                assert_eq!(timestamp, None, "line {n}: {line}");
                assert!(
                    value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value),
                    "line {n}: bad value in {line}"
                );
                if let Some(l) = labels {
                    check_labels(l).unwrap_or_else(|e| panic!("line {n}: {e}: {line}"));
                }
            }
            other => panic!("line {n} does not parse ({other:?}): {line:?}"),
        }
    }
    let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap();
    let mut out = Scraped {
        values: BTreeMap::new(),
        histograms: BTreeMap::new(),
        types: BTreeMap::new(),
    };
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = line.split_once(' ').unwrap();
        let old = out.types.insert(name.to_string(), kind.to_string());
        assert!(old.is_none(), "{name} has two TYPE lines");
    }
    let mut kept = 0usize;
    for s in scrape.samples {
        let mut labels: Vec<(String, String)> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.sort();
        let k = (s.metric.clone(), labels);
        let v = match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            Value::Histogram(buckets) => {
                kept += buckets.len();
                let b = buckets.iter().map(|b| (b.less_than, b.count)).collect();
                assert!(out.histograms.insert(k.clone(), b).is_none(), "{k:?} twice");
                continue;
            }
            Value::Summary(_) => panic!("{k:?}: bulkhead writes no summary"),
        };
        kept += 1;
        assert!(out.values.insert(k.clone(), v).is_none(), "{k:?} twice");
    }
    assert_eq!(kept, sample_lines, "prometheus-parse dropped sample lines");
    out
}

/// `name="value",...` with the format's escapes (`\\`, `\"`, `\n`) and
/// nothing else around the pairs.
fn check_labels(s: &str) -> Result<(), String> {
    let mut rest = s;
    loop {
        let (name, after) = rest.split_once("=\"").ok_or("a label without =\"")?;
        let ok_name = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ok_name {
            return Err(format!("bad label name {name:?}"));
        }
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\' | '"' | 'n')) => {}
                    other => return Err(format!("bad escape {other:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, '\n')) => return Err("a raw newline".into()),
                Some(_) => {}
                None => return Err("an unterminated value".into()),
            }
        };
        rest = &after[end + 1..];
        if rest.is_empty() || rest == "," {
            return Ok(());
        }
        rest = rest
            .strip_prefix(',')
            .ok_or_else(|| format!("junk after a value: {rest:?}"))?;
    }
}
