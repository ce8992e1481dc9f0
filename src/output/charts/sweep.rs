//! Sweep charts: a key figure against a numeric `matrix:` parameter.
//!
//! The report's Sweep section tables each figure against each numeric axis
//! of a matrix; these charts draw the same: x is the parameter, y the
//! figure (the mean over a variant's completed runs), one line per
//! combination of the other axes' values, and a vertical bar for the 95%
//! interval when a variant ran two or more times. Unlike the time-series
//! charts they are drawn from the summary (`variants[].params` and the runs'
//! figures), not from the samples, so whatever can re-render the report
//! from `summary.json` can redraw them too ([`plan_sweep`] then
//! [`write_sweep`]). Files are `charts/sweep-{axis}-{figure}.svg`.

use super::*;
use crate::analysis::{metrics, statistics};
use crate::common::names::LoadMetric;
use crate::results::VariantSummary;
use serde_yaml_ng::Value;

/// The figures drawn against a parameter: (metric, title, y axis, file part).
pub(crate) const FIGURES: [(&str, &str, &str, &str); 6] = [
    (
        "server.sockets.TIME_WAIT.steady_mean",
        "server TIME_WAIT (steady mean)",
        "sockets",
        "server-TIME_WAIT",
    ),
    (
        "client.sockets.TIME_WAIT.steady_mean",
        "client TIME_WAIT (steady mean)",
        "sockets",
        "client-TIME_WAIT",
    ),
    (
        "server.conntrack.TIME_WAIT.steady_mean",
        "conntrack TIME_WAIT on the server (steady mean)",
        "conntrack entries",
        "server-conntrack-TIME_WAIT",
    ),
    (
        "client.conntrack.TIME_WAIT.steady_mean",
        "conntrack TIME_WAIT on the client (steady mean)",
        "conntrack entries",
        "client-conntrack-TIME_WAIT",
    ),
    (
        LoadMetric::RequestsPerSec.name(),
        "requests/s",
        "requests per second",
        "requests_per_sec",
    ),
    (
        LoadMetric::Errors.name(),
        "client errors",
        "errors",
        "errors",
    ),
];

/// A parameter value as text.
pub(crate) fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// The axes of a sweep: the first variant's `params` keys, in order.
pub(crate) fn axes(variants: &[VariantSummary]) -> Vec<String> {
    variants
        .first()
        .map(|v| {
            v.params
                .keys()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// The axes whose values are all numbers, with at least two distinct ones.
pub(crate) fn numeric_axes(variants: &[VariantSummary]) -> Vec<String> {
    axes(variants)
        .into_iter()
        .filter(|k| {
            let mut distinct: Vec<f64> = Vec::new();
            for v in variants {
                match v.params.get(k.as_str()).and_then(Value::as_f64) {
                    Some(x) if !distinct.contains(&x) => distinct.push(x),
                    Some(_) => {}
                    None => return false,
                }
            }
            distinct.len() >= 2
        })
        .collect()
}

/// Order values of the other axes: numbers as numbers, else as text.
fn by_value(a: &[String], b: &[String]) -> std::cmp::Ordering {
    for (x, y) in a.iter().zip(b) {
        let order = match (x.parse::<f64>(), y.parse::<f64>()) {
            (Ok(x), Ok(y)) => x.total_cmp(&y),
            _ => x.cmp(y),
        };
        if order.is_ne() {
            return order;
        }
    }
    std::cmp::Ordering::Equal
}

/// One group of [`groups`]: the other axes with their values, and the
/// indices of its variants.
pub(crate) type Group = (Vec<(String, String)>, Vec<usize>);

/// The variants grouped by the values of every axis but `axis` (each
/// group is one line, or one table), groups in order of those values and
/// members in increasing order of `axis`: (the other axes with their
/// values, the members' indices).
pub(crate) fn groups(variants: &[VariantSummary], axis: &str) -> Vec<Group> {
    let others: Vec<String> = axes(variants).into_iter().filter(|k| k != axis).collect();
    let mut groups: Vec<(Vec<String>, Vec<usize>)> = Vec::new();
    for (i, v) in variants.iter().enumerate() {
        let key: Vec<String> = others
            .iter()
            .map(|k| v.params.get(k.as_str()).map(shown).unwrap_or_default())
            .collect();
        match groups.iter_mut().find(|(g, _)| *g == key) {
            Some((_, members)) => members.push(i),
            None => groups.push((key, vec![i])),
        }
    }
    groups.sort_by(|(a, _), (b, _)| by_value(a, b));
    let at = |i: usize| {
        variants[i]
            .params
            .get(axis)
            .and_then(Value::as_f64)
            .unwrap_or(f64::NAN)
    };
    groups
        .into_iter()
        .map(|(key, mut members)| {
            members.sort_by(|a, b| at(*a).total_cmp(&at(*b)));
            (others.iter().cloned().zip(key).collect(), members)
        })
        .collect()
}

/// Whether some completed run measured `metric`: a load figure when it
/// has a client result; a state count when its side and source counted any
/// state in the steady window (a state never seen is then zero).
pub(crate) fn measured(variants: &[VariantSummary], metric: &str) -> bool {
    let prefix = crate::common::names::state_metric(metric)
        .map(|(side, source, _, stat)| (format!("{side}.{}.", source.as_str()), stat));
    variants.iter().any(|v| {
        metrics::variant_values(v).keys().any(|k| match &prefix {
            Some((start, stat)) => {
                k.starts_with(start.as_str()) && k.ends_with(&format!(".{stat}"))
            }
            None => k == metric,
        })
    })
}

/// One point: x, the mean, and its 95% interval when there is one.
type Point = (f64, f64, Option<(f64, f64)>);

/// One planned sweep chart.
pub struct SweepChart {
    pub chart: Chart,
    axis: String,
    y_desc: &'static str,
    /// (label, points) per line.
    lines: Vec<(String, Vec<Point>)>,
}

/// The sweep charts of a summary: one per numeric axis and figure that
/// some variant measured. None without a matrix.
pub fn plan_sweep(summary: &crate::results::Summary) -> Vec<SweepChart> {
    let variants = &summary.variants;
    let mut out = Vec::new();
    for axis in numeric_axes(variants) {
        let groups = groups(variants, &axis);
        for (metric, title, y_desc, file) in FIGURES {
            if !measured(variants, metric) {
                continue;
            }
            let lines: Vec<(String, Vec<Point>)> = groups
                .iter()
                .map(|(others, members)| {
                    let label = if others.is_empty() {
                        "all runs".to_string()
                    } else {
                        others
                            .iter()
                            .map(|(k, v)| format!("{} = {v}", k.rsplit('.').next().unwrap_or(k)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    };
                    let points = members
                        .iter()
                        .filter_map(|&i| {
                            let v = &variants[i];
                            let x = v.params.get(axis.as_str()).and_then(Value::as_f64)?;
                            let values = metrics::metric_values(v, metric);
                            if values.is_empty() {
                                return None;
                            }
                            let mean = statistics::describe(&values).mean;
                            Some((x, mean, statistics::mean_ci(&values, 0.95)))
                        })
                        .collect();
                    (label, points)
                })
                .collect();
            if lines.iter().all(|(_, p)| p.is_empty()) {
                continue;
            }
            out.push(SweepChart {
                chart: Chart {
                    title: format!("{title} against {axis}"),
                    path: format!("{CHARTS_DIR}/sweep-{}-{file}.svg", file_safe(&axis)),
                    per_host: false,
                    counter: None,
                },
                axis: axis.clone(),
                y_desc,
                lines,
            });
        }
    }
    out
}

/// Draw and write the sweep charts into `dir/charts/`, as
/// [`write_planned`] does the time series: one that fails does not stop
/// the others.
pub fn write_sweep(dir: &Path, charts: &[SweepChart]) -> Drawn {
    let mut drawn = Drawn {
        charts: Vec::new(),
        errors: Vec::new(),
    };
    if charts.is_empty() {
        return drawn;
    }
    let folder = dir.join(CHARTS_DIR);
    if let Err(e) = std::fs::create_dir_all(&folder) {
        drawn.errors.push(Error::io(folder.display(), e));
        return drawn;
    }
    for c in charts {
        let path = dir.join(&c.chart.path);
        let written = render_sweep(c)
            .map_err(|e| e.map_message(|m| format!("{}: {m}", path.display())))
            .and_then(|svg| results::write_text(&path, &svg));
        match written {
            Ok(()) => drawn.charts.push(c.chart.clone()),
            Err(e) => drawn.errors.push(e),
        }
    }
    drawn
}

fn render_sweep(c: &SweepChart) -> Result<String> {
    ensure_font()?;
    let fail =
        |e: &dyn Display| Error::env(format!("cannot draw the chart {:?}: {e}", c.chart.title));
    let entries: Vec<Entry> = c
        .lines
        .iter()
        .enumerate()
        .filter(|(_, (_, p))| !p.is_empty())
        .map(|(i, (label, _))| Entry {
            colour: PALETTE[i % PALETTE.len()],
            label: label.clone(),
        })
        .collect();
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        draw_sweep(&root, c, &entries).map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}

fn draw_sweep(
    root: &DrawingArea<SVGBackend, Shift>,
    c: &SweepChart,
    entries: &[Entry],
) -> DrawResult<()> {
    root.fill(&WHITE)?;
    let area = root.titled(&c.chart.title, font(TITLE_SIZE))?;
    let rows = legend_rows(&area, entries)?;
    let (legend_area, plot_area) = area.split_vertically(rows.len() as i32 * LEGEND_ROW + 8);
    draw_legend(&legend_area, &rows, LEGEND_ROW)?;
    let points = || c.lines.iter().flat_map(|(_, p)| p.iter());
    let x_min = points().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let x_max = points().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let (x_min, x_max) = if x_min < x_max {
        let pad = (x_max - x_min) / 20.0;
        (x_min - pad, x_max + pad)
    } else {
        (x_min - 1.0, x_max + 1.0)
    };
    let y_peak = points()
        .map(|p| p.2.map_or(p.1, |(_, hi)| hi.max(p.1)))
        .fold(0.0, f64::max);
    let y_max = (y_peak * 1.08).max(5.0);
    let mut chart = ChartBuilder::on(&plot_area)
        .margin_left(12)
        .margin_right(32)
        .margin_top(6)
        .margin_bottom(8)
        .x_label_area_size(62)
        .y_label_area_size(96)
        .build_cartesian_2d(x_min..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc(c.axis.as_str())
        .y_desc(c.y_desc)
        .axis_desc_style(font(AXIS_DESC_SIZE))
        .label_style(font(TICK_SIZE).color(&AXIS))
        .axis_style(AXIS)
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .x_labels(10)
        .y_labels(10)
        .y_label_formatter(&|y| thousands(y.max(0.0).round() as u64))
        .draw()?;
    for (i, (_, pts)) in c.lines.iter().enumerate() {
        let colour = PALETTE[i % PALETTE.len()];
        chart.draw_series(LineSeries::new(
            pts.iter().map(|p| (p.0, p.1)),
            colour.stroke_width(3),
        ))?;
        chart.draw_series(
            pts.iter()
                .map(|p| Circle::new((p.0, p.1), 5, colour.filled())),
        )?;
        for (x, _, ci) in pts {
            if let Some((lo, hi)) = ci {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(*x, lo.max(0.0)), (*x, *hi)],
                    colour.stroke_width(2),
                )))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{BySide, RunSummary, StateStats, Summary};

    fn summary() -> Summary {
        let text = "name: s\nrepeat: 2\nmatrix:\n  client.rate: [400, 200]\n  client.linger_zero: [false, true]\n";
        let scenario = crate::scenario::Scenario::parse(text, "s.yaml", &[]).unwrap();
        let variants = scenario
            .variants
            .iter()
            .map(|v| {
                let mut s = VariantSummary::empty(v);
                let rate = v.params["client.rate"].as_f64().unwrap();
                s.runs = (0..2)
                    .map(|k| {
                        let mut r = RunSummary {
                            run_id: format!("{}-{k}", v.name),
                            ..Default::default()
                        };
                        r.sockets = BySide {
                            server: StateStats {
                                steady_mean: [("TIME_WAIT".into(), rate * 60.0 + k as f64)]
                                    .into_iter()
                                    .collect(),
                                ..Default::default()
                            },
                            client: StateStats::default(),
                        };
                        r
                    })
                    .collect();
                s
            })
            .collect();
        Summary {
            scenario: "s".into(),
            info: Default::default(),
            variants,
            comparisons: vec![],
            expectations: vec![],
            charts: vec![],
        }
    }

    #[test]
    fn a_chart_per_numeric_axis_and_measured_figure_drawn_from_the_summary() {
        let s = summary();
        let planned = plan_sweep(&s);
        let paths: Vec<&str> = planned.iter().map(|c| c.chart.path.as_str()).collect();
        // linger_zero is not numeric: it only makes the lines; only what
        // some run counted gets a chart (the client side counted nothing).
        assert_eq!(paths, ["charts/sweep-client_rate-server-TIME_WAIT.svg"]);
        let c = &planned[0];
        assert_eq!(c.lines.len(), 2);
        assert_eq!(c.lines[0].0, "linger_zero = false");
        // Points in increasing x, with intervals from the two runs.
        let xs: Vec<f64> = c.lines[0].1.iter().map(|p| p.0).collect();
        assert_eq!(xs, [200.0, 400.0]);
        assert!(c.lines[0].1.iter().all(|p| p.2.is_some()));
        let dir = tempfile::tempdir().unwrap();
        let drawn = write_sweep(dir.path(), &planned);
        assert!(drawn.errors.is_empty(), "{:?}", drawn.errors);
        assert_eq!(drawn.charts.len(), 1);
        let svg = std::fs::read_to_string(dir.path().join(&c.chart.path)).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("server TIME_WAIT (steady mean) against client.rate"));
        // No params, no sweep charts.
        let mut plain = s;
        for v in &mut plain.variants {
            v.params.clear();
        }
        assert!(plan_sweep(&plain).is_empty());
    }
}
