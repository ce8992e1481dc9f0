//! `client.via: swarm`: the load as a Docker Swarm service, counted on
//! every node by a second one.
//!
//! One client machine has one port range towards the server's endpoint;
//! a swarm has one per node. The client host of the lab file is the
//! manager's engine; the load runs as a replicated service of
//! `client.hosts` tasks ([`SwarmLoad`]: the builtin client from twlab's
//! image, or wrk from the wrk image, with host networking, at most one task
//! per node unless the lab file says otherwise), and each node's sockets
//! and conntrack entries for the endpoint come from a global service of
//! `twlab states ENDPOINT --watch --json` on the same nodes
//! ([`SwarmCounters`]), whose lines stream back through the task logs. Each
//! node the load runs on is a client host of the run ([`SwarmNodeHost`]):
//! its counts are the latest line its counter printed, so a sample is at
//! most one interval (plus the log's delivery) old.
//!
//! What Swarm cannot do shapes the rest. A service's task logs go with the
//! service, so the load's figures are read once every task has ended on its
//! own (`--duration`), and a stop before that (Ctrl-C, a failed sampler)
//! removes the services and the load reports nothing. The tasks start when
//! the scheduler starts them (about 0.7 s for two on one node, measured),
//! not at one instant. twlab changes nothing on the nodes: a variant with
//! client sysctls is refused before the run.

use crate::common::counts::{ClientStats, Counts};
use crate::common::endpoint::{Endpoint, Side};
use crate::docker::swarm::{Service, ServiceRequest, Swarm};
use crate::docker::{Engine, LABEL_ROLE};
use crate::error::{Error, Result, display_argv};
use crate::lab::Counter;
use crate::scenario::labfile::SwarmPlacement;
use crate::scenario::{ClientSpec, DEFAULT_TWLAB_IMAGE};
use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the tasks of a service may take to be running.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// How long after its duration a load task may take to end (below the 30 s
/// the run's drive loop gives a client past its duration, so the logs are
/// read before that).
const END_GRACE: Duration = Duration::from_secs(15);

/// Each task's figures or error, in slot order.
type Outcomes = Vec<Result<ClientStats>>;

/// The load's replicated service. Its end is waited for by a task of its
/// own (which reads the task logs and removes the service), so waiting in
/// a `select!` loop that drops [`SwarmLoad::finish`] every tick loses
/// nothing and never restarts a log read or a removal half way.
pub struct SwarmLoad {
    /// "swarm service NAME (IMAGE) xN: load …", for messages.
    command: String,
    /// The tasks' nodes, in slot order, once running: (node id, hostname).
    nodes: Vec<(String, String)>,
    /// Ends the waiting task early (a stop): it removes the service.
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The waiting task's result, until it is taken.
    outcome: Option<tokio::sync::oneshot::Receiver<Outcomes>>,
}

impl SwarmLoad {
    /// Start `spec.hosts` tasks of the client on the swarm whose manager is
    /// `engine`, and wait until they all run. `argv` is the client's argv
    /// as on a host; its program is the image's entrypoint and is left out.
    pub async fn start(
        engine: Option<&Engine>,
        placement: Option<&SwarmPlacement>,
        spec: &ClientSpec,
        argv: &[String],
        run_id: &str,
    ) -> Result<SwarmLoad> {
        let (engine, placement) = match (engine, placement) {
            (Some(e), Some(p)) => (e, p),
            _ => {
                return Err(Error::invalid(
                    "client.via: swarm needs a lab whose client host has `docker: true` and `swarm:`",
                ));
            }
        };
        let swarm = Swarm::connect(engine).await?;
        let request = ServiceRequest {
            run_id: run_id.to_string(),
            name_suffix: "client".into(),
            image: spec.image().to_string(),
            args: argv.iter().skip(1).cloned().collect(),
            constraint: placement.constraint.clone(),
            labels: HashMap::from([(LABEL_ROLE.to_string(), "client".to_string())]),
            cap_add: Vec::new(),
        };
        let replicas = spec.hosts.get();
        let per_node = placement.one_per_node.then_some(1);
        let mut service = swarm.start_replicated(&request, replicas, per_node).await?;
        let command = format!(
            "swarm service {} ({}) x{replicas}: {}",
            service.name(),
            spec.image(),
            display_argv(&request.args)
        );
        let mut running = match service.wait_running(START_TIMEOUT).await {
            Ok(t) => t,
            Err(e) => {
                if let Err(r) = service.remove().await {
                    errln!("twlab: {r}");
                }
                return Err(e);
            }
        };
        running.sort_by_key(|t| t.slot);
        let nodes: Vec<(String, String)> = running
            .iter()
            .map(|t| {
                (
                    t.node_id.clone(),
                    t.hostname.clone().unwrap_or_else(|| t.node_id.clone()),
                )
            })
            .collect();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (done, outcome) = tokio::sync::oneshot::channel();
        let (spec, duration, shown, n) =
            (spec.clone(), spec.duration.0, command.clone(), nodes.len());
        tokio::spawn(async move {
            let outcomes = tokio::select! {
                o = collect(&service, &spec, duration, &shown, n) => o,
                _ = stopped => each(n, &format!(
                    "`{shown}` was stopped before its end: Swarm removes what a task printed with its service, so it reports nothing"
                )),
            };
            // The figures first: the removal takes seconds.
            let _ = done.send(outcomes);
            if let Err(e) = service.remove().await {
                errln!("twlab: {e}");
            }
        });
        Ok(SwarmLoad {
            command,
            nodes,
            stop: Some(stop),
            outcome: Some(outcome),
        })
    }

    /// The nodes the tasks run on, in slot order: (node id, hostname).
    pub fn nodes(&self) -> &[(String, String)] {
        &self.nodes
    }

    pub fn command(&self) -> &str {
        &self.command
    }

    /// How many tasks run.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Never true for a started load; for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Wait until every task has ended, what each printed is read and the
    /// service removed; each task's figures or error, in slot order.
    /// Cancel-safe (the waiting is done by the load's own task).
    pub async fn finish(&mut self) -> Outcomes {
        let n = self.nodes.len();
        let Some(outcome) = self.outcome.as_mut() else {
            return each(
                n,
                &format!("`{}`: its figures were taken already", self.command),
            );
        };
        let got = outcome.await;
        self.outcome = None;
        got.unwrap_or_else(|_| {
            each(
                n,
                &format!(
                    "`{}`: its waiting task ended without a result",
                    self.command
                ),
            )
        })
    }

    /// Stop the load now: the service is removed, and with it what its
    /// tasks printed (Swarm keeps a task's log only while its service
    /// exists), so the load reports nothing.
    pub async fn abandon(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The same error for each of `n` tasks (at least one).
fn each(n: usize, why: &str) -> Outcomes {
    (0..n.max(1)).map(|_| Err(Error::env(why))).collect()
}

/// Wait for the `n` tasks to end and read what each printed.
async fn collect(
    service: &Service,
    spec: &ClientSpec,
    duration: Duration,
    command: &str,
    n: usize,
) -> Outcomes {
    if let Err(e) = service.wait_complete(duration + END_GRACE).await {
        return each(n, &e.to_string());
    }
    let mut outputs = match service.task_outputs().await {
        Ok(o) => o,
        Err(e) => return each(n, &e.to_string()),
    };
    outputs.sort_by_key(|o| o.task.slot);
    outputs
        .into_iter()
        .map(|o| {
            if o.task.exit_code.is_some_and(|c| c != 0) || o.task.err.is_some() {
                return Err(Error::env(format!(
                    "`{command}`: {}; stderr:\n{}",
                    o.task.describe(),
                    String::from_utf8_lossy(&o.stderr)
                )));
            }
            parse(
                spec,
                &o.stdout,
                command,
                &String::from_utf8_lossy(&o.stderr),
            )
        })
        .collect()
}

/// A task's stdout, read by its tool's parser (the same as on a host).
fn parse(spec: &ClientSpec, stdout: &[u8], command: &str, stderr: &str) -> Result<ClientStats> {
    super::parse_output(spec, &String::from_utf8_lossy(stdout), command, stderr)
}

/// What one line of `twlab states --json` says of the client side.
#[derive(serde::Deserialize)]
struct CounterLine {
    #[serde(default)]
    client: Counts,
    #[serde(default)]
    conntrack: Option<Counts>,
}

/// The latest counts of each node, by node id, and when they arrived.
type Latest = Arc<Mutex<BTreeMap<String, (CounterLine, std::time::Instant)>>>;

/// The global counter service and the latest line of each node.
pub struct SwarmCounters {
    service: Service,
    latest: Latest,
    follower: tokio::task::JoinHandle<()>,
    reader: tokio::task::JoinHandle<()>,
    /// How old a node's latest line may be for a count (three intervals,
    /// at least 5 s: the log's delivery takes its time).
    max_age: Duration,
}

impl SwarmCounters {
    /// Start `twlab states ENDPOINT --watch INTERVAL --json` on every node
    /// of the placement, with host networking and `NET_ADMIN`, and follow
    /// what they print. `image` is twlab's image (the client's when it is
    /// the builtin one).
    pub async fn start(
        engine: Option<&Engine>,
        placement: Option<&SwarmPlacement>,
        spec: &ClientSpec,
        endpoint: Endpoint,
        interval: Duration,
        conntrack: bool,
        run_id: &str,
    ) -> Result<SwarmCounters> {
        let Some(engine) = engine else {
            return Err(Error::invalid(
                "client.via: swarm needs a lab whose client host has `docker: true`",
            ));
        };
        let swarm = Swarm::connect(engine).await?;
        let image = match (spec.tool.as_str(), &spec.image) {
            ("builtin", Some(image)) => image.clone(),
            _ => DEFAULT_TWLAB_IMAGE.to_string(),
        };
        let mut args = vec![
            "states".to_string(),
            endpoint.to_string(),
            "--watch".into(),
            humantime::format_duration(interval).to_string(),
            "--json".into(),
        ];
        if !conntrack {
            args.push("--no-conntrack".into());
        }
        let request = ServiceRequest {
            run_id: run_id.to_string(),
            name_suffix: "counters".into(),
            image,
            args,
            constraint: placement.and_then(|p| p.constraint.clone()),
            labels: HashMap::from([(LABEL_ROLE.to_string(), "counters".to_string())]),
            cap_add: vec!["CAP_NET_ADMIN".into()],
        };
        let mut service = swarm.start_global(&request).await?;
        if let Err(e) = service.wait_running(START_TIMEOUT).await {
            if let Err(r) = service.remove().await {
                errln!("twlab: {r}");
            }
            return Err(e);
        }
        let latest: Latest = Arc::default();
        let (mut lines, follower) = service.follow_lines();
        let sink = latest.clone();
        let reader = tokio::spawn(async move {
            while let Some(line) = lines.recv().await {
                // A failed log read ends the stream; the counts then go
                // stale, and a count refuses a stale line.
                let line = match line {
                    Ok(l) => l,
                    Err(e) => {
                        errln!("twlab: the swarm counters' log: {e}");
                        break;
                    }
                };
                if line.stderr {
                    continue;
                }
                if let Ok(parsed) = serde_json::from_str::<CounterLine>(&line.line)
                    && let Ok(mut map) = sink.lock()
                {
                    map.insert(line.node_id, (parsed, std::time::Instant::now()));
                }
            }
        });
        Ok(SwarmCounters {
            service,
            latest,
            follower,
            reader,
            max_age: (interval * 3).max(Duration::from_secs(5)),
        })
    }

    /// A client host per node the load runs on (`nodes`: node id and
    /// hostname), counted from that node's counter. Waits (up to 10 s) for
    /// a first line from each.
    pub async fn hosts(&self, nodes: &[(String, String)]) -> Result<Vec<SwarmNodeHost>> {
        let mut distinct: Vec<&(String, String)> = Vec::new();
        for n in nodes {
            if !distinct.iter().any(|d| d.0 == n.0) {
                distinct.push(n);
            }
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let missing: Vec<&str> = {
                let map = self
                    .latest
                    .lock()
                    .map_err(|_| Error::env("the swarm counters' lock is poisoned"))?;
                distinct
                    .iter()
                    .filter(|(id, _)| !map.contains_key(id))
                    .map(|(_, host)| host.as_str())
                    .collect()
            };
            if missing.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Error::env(format!(
                    "no count came from the counter service {} on {} within 10 s",
                    self.service.name(),
                    missing.join(", ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(distinct
            .into_iter()
            .map(|(id, hostname)| SwarmNodeHost {
                node_id: id.clone(),
                hostname: hostname.clone(),
                latest: self.latest.clone(),
                max_age: self.max_age,
            })
            .collect())
    }

    /// Stop following and remove the counter service.
    pub async fn remove(mut self) {
        self.follower.abort();
        self.reader.abort();
        if let Err(e) = self.service.remove().await {
            errln!("twlab: {e}");
        }
    }
}

/// One node of the swarm that runs a load task, as a client host of the
/// run: counted from its counter's latest line; it runs nothing for twlab
/// and twlab changes none of its settings.
pub struct SwarmNodeHost {
    node_id: String,
    hostname: String,
    latest: Latest,
    max_age: Duration,
}

impl SwarmNodeHost {
    /// The node's id in the swarm.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The node's latest line, refused when older than `max_age` (its
    /// counter stopped, or its log no longer arrives).
    fn latest<T>(&self, f: impl FnOnce(&CounterLine) -> T) -> Result<T> {
        let map = self
            .latest
            .lock()
            .map_err(|_| Error::env("the swarm counters' lock is poisoned"))?;
        let (line, at) = map
            .get(&self.node_id)
            .ok_or_else(|| Error::env(format!("no count from swarm node {}", self.hostname)))?;
        if at.elapsed() > self.max_age {
            return Err(Error::env(format!(
                "the counts of swarm node {} are {:.1}s old (more than {}s): its counter stopped or its log no longer arrives",
                self.hostname,
                at.elapsed().as_secs_f64(),
                self.max_age.as_secs()
            )));
        }
        Ok(f(line))
    }

    fn refused(&self, what: &str) -> Error {
        Error::env(format!(
            "swarm node {}: twlab does not {what} on Swarm nodes (client.via: swarm)",
            self.hostname
        ))
    }
}

#[async_trait]
impl Counter for SwarmNodeHost {
    fn side(&self) -> Side {
        Side::Client
    }

    fn describe(&self) -> String {
        format!("swarm node {}", self.hostname)
    }

    /// A node's counter task reports sockets and conntrack only.
    async fn kernel_counters(&self) -> Result<crate::measure::kernel_counters::KernelCounters> {
        Err(self.refused("read the kernel's counters"))
    }

    async fn socket_counts(&self, _endpoint: Endpoint) -> Result<Counts> {
        self.latest(|l| l.client.clone())
    }

    async fn conntrack_counts(&self, _endpoint: Endpoint) -> Result<Counts> {
        self.latest(|l| l.conntrack.clone().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_line_gives_the_client_side_and_conntrack() {
        let line = r#"{"endpoint":"127.0.0.1:8080","time":1.5,"server":{"LISTEN":1},"client":{"ESTABLISHED":4,"TIME_WAIT":9},"conntrack":{"TIME_WAIT":9},"took_ms":0.4}"#;
        let parsed: CounterLine = serde_json::from_str(line).expect("line");
        assert_eq!(parsed.client.get("TIME_WAIT"), Some(&9));
        assert_eq!(
            parsed.conntrack.and_then(|c| c.get("TIME_WAIT").copied()),
            Some(9)
        );
        assert!(serde_json::from_str::<CounterLine>("not json").is_err());
    }

    #[test]
    fn load_output_is_parsed_by_tool_and_garbage_is_an_error() {
        let json = serde_json::to_string(&ClientStats {
            tool: "builtin".into(),
            requests: 7,
            ..Default::default()
        })
        .expect("json");
        let builtin = ClientSpec::default();
        let stats = parse(&builtin, json.as_bytes(), "x", "").expect("stats");
        assert_eq!(stats.requests, 7);
        assert!(parse(&builtin, b"\xff\xfe garbage", "x", "").is_err());
        let wrk = ClientSpec {
            tool: crate::scenario::ClientTool::named("wrk").expect("wrk"),
            ..Default::default()
        };
        assert!(parse(&wrk, b"not wrk", "x", "").is_err());
        // The same wrk parser as on a host reads a task's report.
        let report = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/wrk/ok_2xx.txt"
        ))
        .expect("fixture");
        assert_eq!(
            parse(&wrk, report.as_bytes(), "x", "")
                .expect("wrk")
                .requests,
            3895
        );
    }
}
