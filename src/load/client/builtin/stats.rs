//! The counts of the load: each connection slot's own (no lock between
//! slots while the load runs), summed into [`ClientStats`] when it ends,
//! with the latency histograms read as percentiles. Apart from
//! `builtin.rs`, which drives the connections, because counting and
//! reporting are one idea of their own.

use super::{CONNECT_RETRY_BACKOFF, process_cpu_secs};
use crate::common::counts::{ClientStats, Counts, ErrorCounts, Latency};
use hdrhistogram::Histogram;
use std::time::Duration;

/// Status-class keys always present in `responses_by_class`.
pub(super) const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// One connection slot's counters; merged into [`ClientStats`] at the end.
pub(super) struct SlotStats {
    pub(super) requests: u64,
    /// Responses by status / 100 (index 0..=5; 6 = anything else).
    pub(super) by_class: [u64; 7],
    pub(super) connections_opened: u64,
    pub(super) connect_errors: Counts,
    pub(super) read: u64,
    pub(super) write: u64,
    pub(super) timeout: u64,
    pub(super) latency_us: Histogram<u64>,
    /// With a rate: from writing each request to the end of its response.
    pub(super) service_us: Option<Histogram<u64>>,
    /// With a rate: requests whose time came, late ones, the longest lag.
    pub(super) scheduled: u64,
    pub(super) late: u64,
    pub(super) max_lag: Duration,
}

impl SlotStats {
    pub(super) fn new(timeout: Duration, scheduled: bool) -> Self {
        SlotStats {
            requests: 0,
            by_class: [0; 7],
            connections_opened: 0,
            connect_errors: Counts::new(),
            read: 0,
            write: 0,
            timeout: 0,
            // Latency from the scheduled time can exceed the timeout by how
            // late the request was: room for ten timeouts.
            latency_us: new_histogram(if scheduled { timeout * 10 } else { timeout }),
            service_us: scheduled.then(|| new_histogram(timeout)),
            scheduled: 0,
            late: 0,
            max_lag: Duration::ZERO,
        }
    }

    /// A completed request: `latency` from its scheduled time (or from
    /// sending it, in a closed loop), `service` from sending it.
    pub(super) fn record(&mut self, status: u16, latency: Duration, service: Duration) {
        self.requests += 1;
        let class = usize::from(status / 100).min(6);
        self.by_class[class] += 1;
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        self.latency_us.saturating_record(us(latency));
        if let Some(h) = &mut self.service_us {
            h.saturating_record(us(service));
        }
    }

    /// A request whose time came, sent (or its connect begun) `lag` after it.
    pub(super) fn due(&mut self, lag: Duration) {
        self.scheduled += 1;
        if lag.as_secs_f64() * 1000.0 > crate::common::counts::LATE_AFTER_MS {
            self.late += 1;
        }
        self.max_lag = self.max_lag.max(lag);
    }

    pub(super) fn connect_error(&mut self, errno: String) {
        *self.connect_errors.entry(errno).or_insert(0) += 1;
    }
}

/// A histogram of microseconds able to hold anything up to the timeout (at
/// least 1 s; larger values are clamped, but completed requests cannot take
/// much longer than the timeout). About 100 KB with the 2 s default.
pub(super) fn new_histogram(timeout: Duration) -> Histogram<u64> {
    let high = u64::try_from(timeout.as_micros())
        .unwrap_or(u64::MAX)
        .max(1_000_000);
    Histogram::new_with_bounds(1, high, 3)
        .or_else(|_| Histogram::new(3))
        .unwrap_or_else(|_| unreachable!("3 significant digits are always valid"))
}

/// Sums the slots into the report.
pub(super) fn merge(
    slots: Vec<SlotStats>,
    elapsed: Duration,
    timeout: Duration,
    rate: Option<f64>,
) -> ClientStats {
    let mut hist = new_histogram(if rate.is_some() {
        timeout * 10
    } else {
        timeout
    });
    let mut service = new_histogram(timeout);
    let (mut scheduled, mut late, mut max_lag) = (0, 0, Duration::ZERO);
    let mut by_class = [0u64; 7];
    let mut requests = 0;
    let mut opened = 0;
    let mut errors = ErrorCounts {
        connect_by_errno: Some(Counts::new()),
        ..ErrorCounts::default()
    };
    let mut by_errno = Counts::new();
    for st in slots {
        requests += st.requests;
        opened += st.connections_opened;
        for (total, n) in by_class.iter_mut().zip(st.by_class) {
            *total += n;
        }
        for (name, n) in st.connect_errors {
            errors.connect += n;
            *by_errno.entry(name).or_insert(0) += n;
        }
        errors.read += st.read;
        errors.write += st.write;
        errors.timeout += st.timeout;
        // Same bounds everywhere, so adding cannot fail; if it did, the
        // latency would only miss that slot.
        let _ = hist.add(&st.latency_us);
        if let Some(h) = &st.service_us {
            let _ = service.add(h);
        }
        scheduled += st.scheduled;
        late += st.late;
        max_lag = max_lag.max(st.max_lag);
    }
    errors.connect_by_errno = Some(by_errno);

    let mut classes: Counts = CLASSES
        .iter()
        .enumerate()
        .map(|(i, name)| (name.to_string(), by_class[i + 2]))
        .collect();
    if by_class[1] > 0 {
        classes.insert("1xx".into(), by_class[1]);
    }
    let other = by_class[0] + by_class[6];
    if other > 0 {
        classes.insert("other".into(), other);
    }
    let non_2xx_3xx = requests - by_class[2] - by_class[3];

    let latency = latency_of(&hist);
    let schedule = rate.map(|rate| crate::common::counts::Schedule {
        rate,
        scheduled,
        late,
        max_lag_ms: max_lag.as_secs_f64() * 1000.0,
        service_latency: latency_of(&service),
    });

    let secs = elapsed.as_secs_f64();
    let mut notes = Vec::new();
    if errors.connect > 0 {
        notes.push(format!(
            "{} failed connects were retried after {} ms (wrk would have dropped those connection slots)",
            errors.connect,
            CONNECT_RETRY_BACKOFF.as_millis()
        ));
    }
    if errors.timeout > 0 {
        notes.push(format!(
            "{} timed-out requests closed their connection, which was reopened (wrk keeps waiting)",
            errors.timeout
        ));
    }
    ClientStats {
        tool: "builtin".into(),
        duration_secs: secs,
        requests,
        requests_per_sec: if secs > 0.0 {
            requests as f64 / secs
        } else {
            0.0
        },
        responses_by_class: Some(classes),
        non_2xx_3xx,
        connections_opened: Some(opened),
        errors,
        latency,
        cpu_secs: process_cpu_secs(),
        notes,
        schedule,
        not_measured: Vec::new(),
    }
}

/// The percentiles of a histogram of microseconds, in milliseconds.
pub(super) fn latency_of(hist: &Histogram<u64>) -> Latency {
    let ms = |us: u64| us as f64 / 1000.0;
    if hist.is_empty() {
        return Latency {
            p75_ms: Some(0.0),
            ..Latency::default()
        };
    }
    Latency {
        mean_ms: hist.mean() / 1000.0,
        p50_ms: ms(hist.value_at_quantile(0.50)),
        p75_ms: Some(ms(hist.value_at_quantile(0.75))),
        p90_ms: ms(hist.value_at_quantile(0.90)),
        p99_ms: ms(hist.value_at_quantile(0.99)),
        max_ms: ms(hist.max()),
    }
}
