//! The client hosts of runs with several (`client.hosts`): how the load,
//! the port errors and TIME_WAIT spread over the clients, beside each
//! variant's total, and how many client addresses the server saw. A
//! variant with one client host shows its one row, so 1 and N compare in
//! one table.

use super::*;

/// One row's figures, means over a variant's completed runs.
#[derive(Default)]
struct HostAgg {
    runs: u32,
    requests_per_sec: f64,
    connect_errors: f64,
    eaddrnotavail: f64,
    tw_peak: f64,
    tw_final: f64,
    ct_tw_final: f64,
}

impl HostAgg {
    fn add(
        &mut self,
        load: &crate::common::counts::ClientStats,
        sockets: &results::StateStats,
        ct: &results::StateStats,
    ) {
        self.runs += 1;
        self.requests_per_sec += load.requests_per_sec;
        self.connect_errors += load.errors.connect as f64;
        self.eaddrnotavail += load
            .errors
            .connect_by_errno
            .as_ref()
            .and_then(|m| m.get("EADDRNOTAVAIL"))
            .copied()
            .unwrap_or(0) as f64;
        let tw = |c: &Counts| c.get("TIME_WAIT").copied().unwrap_or(0) as f64;
        self.tw_peak += tw(&sockets.peak);
        self.tw_final += tw(&sockets.final_);
        self.ct_tw_final += tw(&ct.final_);
    }

    fn cells(&self) -> Vec<String> {
        let n = f64::from(self.runs.max(1));
        [
            self.requests_per_sec,
            self.eaddrnotavail,
            self.connect_errors,
            self.tw_peak,
            self.tw_final,
            self.ct_tw_final,
        ]
        .iter()
        .map(|v| num(v / n))
        .collect()
    }
}

/// The "Client hosts" section, when any run had several client hosts.
pub(super) fn client_hosts_table(out: &mut String, view: &View) {
    if !view
        .variants
        .iter()
        .flat_map(|v| &v.runs)
        .any(|r| r.clients.len() > 1)
    {
        return;
    }
    out.push_str("## Client hosts\n\n");
    out.push_str(
        "Each client host of the runs with several (`client.hosts`), and each variant's total; means over completed runs. *TIME_WAIT* is the client's sockets for the endpoint, *conntrack TW* its conntrack entries in TIME_WAIT; *addresses* is how many distinct client addresses the server's counts saw.\n\n",
    );
    let header = [
        "variant",
        "client host",
        "address",
        "req/s",
        "EADDRNOTAVAIL",
        "connect errors",
        "TIME_WAIT peak",
        "TIME_WAIT final",
        "conntrack TW final",
        "addresses",
    ];
    let mut rows = Vec::new();
    for (i, v) in view.variants.iter().enumerate() {
        let completed: Vec<&RunSummary> = v.runs.iter().filter(|r| r.is_complete()).collect();
        let width = completed.iter().map(|r| r.clients.len()).max().unwrap_or(0);
        for h in 0..width {
            let mut agg = HostAgg::default();
            let mut name = String::new();
            let mut address = String::new();
            for r in &completed {
                if let Some(c) = r.clients.get(h) {
                    name = format!("client {}", h + 1);
                    address.clone_from(&c.address);
                    if let Some(load) = &c.load {
                        agg.add(load, &c.sockets, &c.conntrack);
                    }
                }
            }
            let mut row = vec![variant_label(v, i), name, code(&address)];
            row.extend(agg.cells());
            row.push(String::new());
            rows.push(row);
        }
        let mut total = HostAgg::default();
        let mut peers: Vec<u64> = Vec::new();
        for r in &completed {
            if let Some(load) = &r.client {
                total.add(load, &r.sockets.client, &r.conntrack.client);
            }
            peers.extend(r.server_peers);
        }
        if total.runs == 0 {
            continue;
        }
        let label = if width > 1 {
            format!("**total of {width}**")
        } else {
            "one host".to_string()
        };
        let mut row = vec![variant_label(v, i), label, String::new()];
        row.extend(total.cells());
        row.push(match (peers.iter().min(), peers.iter().max()) {
            (Some(lo), Some(hi)) if lo == hi => lo.to_string(),
            (Some(lo), Some(hi)) => format!("{lo}–{hi}"),
            _ => "—".into(),
        });
        rows.push(row);
    }
    out.push_str(&markdown::table(&header, rows, &[0, 1, 2]));
}
