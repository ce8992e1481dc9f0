//! The bench's table (terminal and markdown), the machine it ran on, and
//! its files: `bench.json` (every measurement) and `bench.md` (the table
//! README quotes), rewritten after every section.

use super::{BenchResult, Row};
use crate::error::Result;
use serde::Serialize;
use std::path::Path;

/// What the figures were measured on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub kernel: String,
    pub cpu: String,
    pub cores: usize,
    pub memory_gib: f64,
    pub twlab: String,
}

impl Machine {
    pub fn read() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or("unknown CPU".to_string(), |(_, v)| v.trim().to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        Machine {
            kernel: crate::run::kernel_release(),
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            twlab: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    pub fn describe(&self) -> String {
        format!(
            "Linux {}, {} × {}, {} GiB, twlab {}",
            self.kernel, self.cores, self.cpu, self.memory_gib, self.twlab
        )
    }
}

fn cells(r: &Row) -> [String; 6] {
    [
        r.what.clone(),
        r.condition.clone(),
        if r.median.is_finite() {
            format!("{} {}", figure(r.median), r.unit)
        } else {
            "—".into()
        },
        r.ratio.map_or(String::new(), |x| format!("{x:.3}")),
        r.vs.clone().unwrap_or_default(),
        [
            (r.values.len() > 1).then(|| format!("n={}", r.values.len())),
            (!r.note.is_empty()).then(|| r.note.clone()),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; "),
    ]
}

const HEADER: [&str; 6] = ["measured", "condition", "median", "ratio", "vs", "notes"];

/// A figure with as many decimals as it needs.
fn figure(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

pub fn render_terminal(rows: &[Row]) -> String {
    let mut b = tabled::builder::Builder::default();
    b.push_record(HEADER);
    for r in rows {
        b.push_record(cells(r));
    }
    let mut t = b.build();
    t.with(tabled::settings::Style::sharp());
    t.to_string()
}

pub fn render_markdown(result: &BenchResult) -> String {
    let mut out = format!(
        "# twlab bench\n\nMachine: {}.\n\nRatio = median / median of the row named under *vs*.\n\n",
        result.machine.describe()
    );
    out.push_str(&format!("| {} |\n", HEADER.join(" | ")));
    out.push_str(&format!("|{}\n", "---|".repeat(HEADER.len())));
    for r in &result.rows {
        let c = cells(r).map(|c| c.replace('|', "\\|"));
        out.push_str(&format!("| {} |\n", c.join(" | ")));
    }
    out
}

pub fn save(dir: &Path, result: &BenchResult) -> Result<()> {
    crate::results::write_json(&dir.join("bench.json"), result)?;
    crate::results::write_text(&dir.join("bench.md"), &render_markdown(result))
}
