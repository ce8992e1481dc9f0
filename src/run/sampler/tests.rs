//! The sampler's arithmetic and its ticks; its counting and sampling
//! against fake counters: the step that samples the load, without a lab.

use super::*;

#[test]
fn the_client_total_adds_up_each_host_state_by_state() {
    let c = |pairs: &[(&str, u64)]| -> Counts {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    };
    let total = sum_counts(&[
        c(&[("TIME_WAIT", 10), ("ESTABLISHED", 2)]),
        c(&[("TIME_WAIT", 5), ("SYN_SENT", 1)]),
        c(&[]),
    ]);
    assert_eq!(
        total,
        c(&[("TIME_WAIT", 15), ("ESTABLISHED", 2), ("SYN_SENT", 1)])
    );
}

#[test]
fn ticks_overrun_by_a_slow_sample_are_counted() {
    let due = tokio::time::Instant::now();
    let i = Duration::from_millis(100);
    assert_eq!(missed_since(due, due, i), 0);
    assert_eq!(missed_since(due, due + Duration::from_millis(99), i), 0);
    assert_eq!(missed_since(due, due + Duration::from_millis(150), i), 1);
    assert_eq!(missed_since(due, due + Duration::from_millis(1000), i), 10);
    // A clock that went backwards for the caller is no miss.
    assert_eq!(missed_since(due + i, due, i), 0);
}

#[test]
fn a_hung_sample_is_given_ten_intervals_and_at_least_ten_seconds() {
    assert_eq!(
        sample_timeout(Duration::from_millis(100)),
        Duration::from_secs(10)
    );
    assert_eq!(
        sample_timeout(Duration::from_secs(5)),
        Duration::from_secs(50)
    );
}

/// A counter that answers with the counts it was given, and counts how
/// often it was asked: the sampler's hosts without a lab.
struct FakeCounter {
    side: Side,
    counts: Counts,
    peers: Option<u64>,
    fail: bool,
    asked: std::sync::atomic::AtomicU32,
}

impl FakeCounter {
    fn new(side: Side, time_wait: u64) -> Self {
        FakeCounter {
            side,
            counts: [("TIME_WAIT".to_string(), time_wait)].into_iter().collect(),
            peers: None,
            fail: false,
            asked: Default::default(),
        }
    }

    fn answer(&self) -> Result<Counts> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if self.fail {
            return Err(Error::env("fake counter: the count failed"));
        }
        Ok(self.counts.clone())
    }
}

#[async_trait::async_trait]
impl Counter for FakeCounter {
    fn side(&self) -> Side {
        self.side
    }

    fn describe(&self) -> String {
        format!("fake {}", self.side)
    }

    async fn socket_counts(&self, _endpoint: Endpoint) -> Result<Counts> {
        self.answer()
    }

    async fn conntrack_counts(&self, _endpoint: Endpoint) -> Result<Counts> {
        self.answer()
    }

    async fn kernel_counters(&self) -> Result<KernelCounters> {
        Err(Error::env("fake counter: no kernel counters"))
    }

    async fn peer_addresses(&self, _endpoint: Endpoint) -> Result<Option<u64>> {
        Ok(self.peers)
    }
}

fn collector<'a>(server: &'a FakeCounter, clients: Vec<&'a dyn Counter>) -> Collector<'a> {
    Collector {
        server,
        clients,
        endpoint: Endpoint::new(std::net::Ipv4Addr::LOCALHOST.into(), 8080),
        sockets: true,
        conntrack: true,
        variant: "a".into(),
        repeat: 1,
        run_id: "fake".into(),
        kernel: KernelSampling::new(false),
    }
}

#[tokio::test]
async fn a_snapshot_counts_every_host_and_sums_the_clients() {
    let mut server = FakeCounter::new(Side::Server, 7);
    server.peers = Some(3);
    let (a, b) = (
        FakeCounter::new(Side::Client, 10),
        FakeCounter::new(Side::Client, 5),
    );
    let c = collector(&server, vec![&a, &b]);
    let samples = c.snapshot(1.0, false).await.expect("snapshot");
    // Per source: the server's, then the clients' total.
    assert_eq!(samples.len(), 4, "{samples:?}");
    let tw = |s: &Sample| s.counts.get("TIME_WAIT").copied();
    for source in [Source::Sockets, Source::Conntrack] {
        let of = |side| {
            samples
                .iter()
                .find(|s| s.source == source && s.host == side)
                .expect("a sample per side and source")
        };
        assert_eq!(tw(of(Side::Server)), Some(7));
        assert_eq!(tw(of(Side::Client)), Some(15));
        assert_eq!(of(Side::Client).per_client.len(), 2);
    }
    // Peers only with the final snapshot, and only on the server's sockets.
    assert!(samples.iter().all(|s| s.peers.is_none()));
    let last = c.snapshot(2.0, true).await.expect("final snapshot");
    let with_peers: Vec<_> = last.iter().filter(|s| s.peers.is_some()).collect();
    assert_eq!(with_peers.len(), 1);
    assert_eq!(with_peers[0].host, Side::Server);
    assert_eq!(with_peers[0].source, Source::Sockets);
    assert_eq!(with_peers[0].peers, Some(3));
    assert_eq!(a.asked.load(std::sync::atomic::Ordering::SeqCst), 4);
}

#[tokio::test]
async fn sampling_writes_each_tick_until_stopped_and_a_failed_count_ends_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = FakeCounter::new(Side::Server, 1);
    let client = FakeCounter::new(Side::Client, 2);
    let c = collector(&server, vec![&client]);
    let mut writer = SampleWriter::create(dir.path()).expect("writer");
    let mut kept = RunSamples::new(0.0..10.0);
    let (stop_tx, stop_rx) = watch::channel(false);
    let interval = Duration::from_millis(20);
    let stopper = async {
        tokio::time::sleep(interval * 6).await;
        let _ = stop_tx.send(true);
    };
    let start = Instant::now();
    let (sampled, ()) = tokio::join!(
        c.run(interval, start, &mut writer, &mut kept, stop_rx, None),
        stopper
    );
    sampled.expect("sampling");
    let text = std::fs::read_to_string(dir.path().join(crate::results::SAMPLES_FILE))
        .expect("samples file");
    let lines: Vec<Sample> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a sample line"))
        .collect();
    // Four samples a tick (two sides, two sources), every tick written.
    assert!(
        lines.len() >= 8 && lines.len().is_multiple_of(4),
        "{}",
        lines.len()
    );
    let ticks = kept.periodic(Side::Server, Source::Sockets);
    assert_eq!(ticks as usize, lines.len() / 4);

    let mut failing = FakeCounter::new(Side::Client, 2);
    failing.fail = true;
    let c = collector(&server, vec![&failing]);
    let (_tx, stop_rx) = watch::channel(false);
    let out = c
        .run(
            interval,
            Instant::now(),
            &mut writer,
            &mut kept,
            stop_rx,
            None,
        )
        .await;
    let err = out.expect_err("a failed count ends sampling");
    assert!(err.to_string().contains("the count failed"), "{err}");
}
