//! A Prometheus scrape read by an independent parser (`prometheus-parse`),
//! for the tests of vxflow's metrics.

/// Parsed metrics text.
pub struct Scrape(prometheus_parse::Scrape);

impl Scrape {
    /// Parses metrics text; panics if it is not valid.
    #[must_use]
    pub fn parse(text: &str) -> Self {
        Self(prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap())
    }

    /// The value of the sample `name` with these labels (among others);
    /// panics if there is none. Every vxflow sample is a whole number.
    #[must_use]
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "whole, non-negative counts")]
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let s = self
            .0
            .samples
            .iter()
            .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .unwrap_or_else(|| panic!("no {name} {labels:?}"));
        let v = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name}: {other:?}"),
        };
        assert!(v >= 0.0 && v.fract() == 0.0, "{name} {labels:?} = {v} is not a count");
        v as u64
    }
}
