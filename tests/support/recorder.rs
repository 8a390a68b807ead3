//! A `metrics` recorder for tests: counts every counter by name and labels, so a test can check
//! what the code recorded through the facade (`metrics::set_default_local_recorder`, per thread:
//! a `#[tokio::test]`'s current-thread runtime runs all of the test's tasks on it). Gauges and
//! histograms are ignored.

use metrics::{Counter, CounterFn, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type Labels = BTreeMap<String, String>;

#[derive(Default)]
pub struct Counts {
    counters: Mutex<Vec<(String, Labels, Arc<Cell>)>>,
}

#[derive(Default)]
struct Cell(AtomicU64);

impl CounterFn for Cell {
    fn increment(&self, value: u64) {
        self.0.fetch_add(value, Ordering::Relaxed);
    }
    fn absolute(&self, value: u64) {
        self.0.store(value, Ordering::Relaxed);
    }
}

impl Counts {
    /// The sum of counter `name` over every label set that has all of `want`.
    pub fn sum(&self, name: &str, want: &[(&str, &str)]) -> u64 {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        counters
            .iter()
            .filter(|(n, labels, _)| {
                n == name && want.iter().all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, c)| c.0.load(Ordering::Relaxed))
            .sum()
    }
}

impl Recorder for Counts {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        let labels: Labels = key.labels().map(|l| (l.key().to_string(), l.value().to_string())).collect();
        let mut counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let cell = match counters.iter().find(|(n, l, _)| n == key.name() && *l == labels) {
            Some((_, _, c)) => c.clone(),
            None => {
                let c = Arc::new(Cell::default());
                counters.push((key.name().to_string(), labels, c.clone()));
                c
            }
        };
        Counter::from_arc(cell)
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}
