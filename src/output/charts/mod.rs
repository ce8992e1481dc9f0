//! Time-series charts of a run: how the counts moved while the load ran.
//!
//! The report's tables give means, peaks and final counts; they cannot show
//! *how* TIME_WAIT filled up (the first minute), whether it settled, or
//! whether one repeat behaved unlike the others. One line per run per
//! (side, source, state) answers that at a glance, so twlab draws them from
//! `samples.jsonl` into `DIR/charts/` as SVG files, which GitHub shows
//! inline in `report.md` and `twlab report --html` embeds as they are.
//!
//! Deciding which charts there are ([`plan`]) is apart from drawing and
//! writing them ([`write_planned`]): a run writes `summary.json`, which
//! lists the charts, before any chart file, so a chart that fails cannot
//! take the summary with it; and one chart that fails does not stop the
//! others. [`write_charts`] does both at once.
//!
//! Charts are SVG because a run directory is read in a browser or on GitHub,
//! and a vector chart stays sharp at any width. plotters draws them; the one
//! thing it needs a font for is measuring text (the legend, the label
//! areas), and its default font support looks fonts up through fontconfig.
//! A lab machine or a CI container may have no fonts installed at all, so
//! twlab measures with a copy of DejaVu Sans compiled into the binary (a
//! 22 KB Latin-1 subset, see `charts/DejaVuSans-LICENSE.txt`) and the SVG
//! asks the viewer for DejaVu Sans, then Verdana (of similar width), then
//! any sans-serif. Nothing about writing a chart depends on the machine.
//!
//! The snapshot taken after the client stopped (`is_final`) is left out: it
//! is not on the load's clock, and the last periodic sample is at most one
//! interval before it. Colours follow the order in which variants first
//! appear in the samples (the baseline first in an interleaved run); the
//! repeats of a variant share its colour and its one legend entry.
//!
//! With several client hosts the client-side charts draw their sum, or one
//! line per client host (`collect.client_lines`), each host in a colour of
//! its own after the variants'; `series` says which samples make which
//! line, and why.

mod kernel;
mod series;
pub(crate) mod sweep;

use crate::common::counts::Source;
use crate::common::endpoint::Side;
use crate::error::{Error, Result};
use crate::results::kernel::KernelSample;
use crate::results::{self, Chart, Sample};
use crate::scenario::CollectSpec;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use series::{Key, RunSeries, keys, runs_of};
use std::fmt::Display;
use std::path::Path;
use std::sync::OnceLock;
pub use sweep::{SweepChart, plan_sweep, write_sweep};

/// The folder of the run directory that holds the charts.
pub const CHARTS_DIR: &str = "charts";

/// The font that measures text; see the module documentation.
const FONT: &[u8] = include_bytes!("DejaVuSans-subset.ttf");
/// The font family written into the SVG, and the name the font is
/// registered under in plotters (the two are the same string).
const FAMILY: &str = "DejaVu Sans, Verdana, sans-serif";

/// Size of a chart in pixels: about the width of a GitHub page, so text
/// keeps its size when the image is shown there.
const WIDTH: u32 = 960;
const HEIGHT: u32 = 480;
/// Height of a legend row, and how many rows [`HEIGHT`] has room for: a
/// chart whose legend needs more (one line per client host of many hosts)
/// is that much taller, so its plot keeps its size.
const LEGEND_ROW: i32 = 30;
const LEGEND_ROWS_IN_HEIGHT: usize = 2;

/// Text sizes in plotters' units (the SVG gets 1/1.24 of each, in px).
const TITLE_SIZE: f64 = 28.0;
const AXIS_DESC_SIZE: f64 = 21.0;
const TICK_SIZE: f64 = 19.0;
const LEGEND_SIZE: f64 = 20.0;

/// Colours of the variants, in order (Tableau 10, reordered so that the
/// first few differ most and the pale yellow comes last).
const PALETTE: [RGBColor; 10] = [
    RGBColor(0x4E, 0x79, 0xA7), // blue
    RGBColor(0xF2, 0x8E, 0x2B), // orange
    RGBColor(0x59, 0xA1, 0x4F), // green
    RGBColor(0xE1, 0x57, 0x59), // red
    RGBColor(0xB0, 0x7A, 0xA1), // purple
    RGBColor(0x9C, 0x75, 0x5F), // brown
    RGBColor(0xFF, 0x9D, 0xA7), // pink
    RGBColor(0x76, 0xB7, 0xB2), // teal
    RGBColor(0xBA, 0xB0, 0xAC), // grey
    RGBColor(0xED, 0xC9, 0x48), // yellow
];
const GRID: RGBColor = RGBColor(0xDD, 0xDD, 0xDD);
const AXIS: RGBColor = RGBColor(0x55, 0x55, 0x55);

/// Write the charts of a run directory from its samples into DIR/charts/ and return them.
///
/// [`plan`] then [`write_planned`]; after a failure the other charts are
/// still written, and the first failure is returned.
pub fn write_charts(dir: &Path, samples: &[Sample], collect: &CollectSpec) -> Result<Vec<Chart>> {
    let drawn = write_planned(dir, &plan(samples, &[], collect));
    match drawn.errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(drawn.charts),
    }
}

/// The charts the samples call for, with their lines, before anything is
/// drawn or written: which charts a run has is known (and goes into
/// `summary.json`) before a file is written.
pub struct Plan<'a> {
    /// What the lines stand for, in the palette's order: the variants in
    /// the order they first appear, then their client hosts when drawn.
    keys: Vec<Key<'a>>,
    charts: Vec<Planned>,
}

/// One chart of a [`Plan`].
struct Planned {
    chart: Chart,
    y_desc: &'static str,
    y: YAxis,
    runs: Vec<RunSeries>,
}

/// What the y axis counts, which sets its ticks and their labels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum YAxis {
    /// Whole things (sockets, entries): whole-number ticks.
    Count,
    /// Events per second, which may be fractional.
    Rate,
}

impl Plan<'_> {
    /// The charts in order, as `summary.json` lists them.
    pub fn charts(&self) -> Vec<Chart> {
        self.charts.iter().map(|p| p.chart.clone()).collect()
    }
}

/// Plan the charts of a run directory from its samples and its kernel
/// samples (`kernel.jsonl`).
///
/// One chart per state in `collect.states`, source (sockets, conntrack)
/// and side (server, client), in that order, for each combination whose
/// samples ever counted that state; then the rates of the kernel counters
/// that explain TIME_WAIT, per side, for each counter that moved
/// ([`kernel`]). Files are
/// `charts/{side}-{source}-{STATE}.svg`; [`Chart::path`] is relative to the
/// run directory. No sample, no chart. `collect.client_lines` chooses the
/// client-side lines of runs on several client hosts (the file is the same
/// either way; the title says when the lines are the hosts').
pub fn plan<'a>(
    samples: &'a [Sample],
    kernel_samples: &[KernelSample],
    collect: &CollectSpec,
) -> Plan<'a> {
    let lines = collect.client_lines;
    let keys = keys(samples, lines);
    let mut charts = Vec::new();
    for state in &collect.states {
        for source in [Source::Sockets, Source::Conntrack] {
            for side in Side::BOTH {
                let runs = runs_of(samples, side, source, state, &keys, lines);
                if runs.is_empty() {
                    continue;
                }
                let per_host = runs.iter().any(|r| keys[r.key].host.is_some());
                let file = format!("{side}-{}-{}.svg", source.as_str(), file_safe(state));
                charts.push(Planned {
                    chart: Chart {
                        title: title(state, source, side, per_host),
                        path: format!("{CHARTS_DIR}/{file}"),
                        per_host,
                        counter: None,
                    },
                    y_desc: match source {
                        Source::Sockets => "sockets",
                        Source::Conntrack => "conntrack entries",
                    },
                    y: YAxis::Count,
                    runs,
                });
            }
        }
    }
    charts.extend(kernel::plan(kernel_samples, &keys));
    Plan { keys, charts }
}

/// What [`write_planned`] did: the charts written, in plan order, and a
/// failure for each one that was not (each naming its file or folder).
pub struct Drawn {
    pub charts: Vec<Chart>,
    pub errors: Vec<Error>,
}

/// Draw every chart of `plan` and write it into `dir/charts/` (created
/// when there is a chart). A chart that cannot be drawn or written does
/// not stop the others; a folder that cannot be created stops them all,
/// with one error naming it. No chart, no folder.
pub fn write_planned(dir: &Path, plan: &Plan) -> Drawn {
    let mut drawn = Drawn {
        charts: Vec::new(),
        errors: Vec::new(),
    };
    if plan.charts.is_empty() {
        return drawn;
    }
    let folder = dir.join(CHARTS_DIR);
    if let Err(e) = std::fs::create_dir_all(&folder) {
        drawn.errors.push(Error::io(folder.display(), e));
        return drawn;
    }
    for planned in &plan.charts {
        let path = dir.join(&planned.chart.path);
        let spec = ChartSpec {
            title: &planned.chart.title,
            y_desc: planned.y_desc,
            y: planned.y,
            keys: &plan.keys,
            runs: &planned.runs,
        };
        let written = render_svg(&spec)
            .map_err(|e| e.map_message(|m| format!("{}: {m}", path.display())))
            .and_then(|svg| results::write_text(&path, &svg));
        match written {
            Ok(()) => drawn.charts.push(planned.chart.clone()),
            Err(e) => drawn.errors.push(e),
        }
    }
    drawn
}

/// "TIME_WAIT sockets on the server", "TIME_WAIT conntrack entries on the
/// client"; "TIME_WAIT sockets on each client host" when the lines are the
/// client hosts'.
fn title(state: &str, source: Source, side: Side, per_host: bool) -> String {
    let what = match source {
        Source::Sockets => "sockets",
        Source::Conntrack => "conntrack entries",
    };
    if per_host {
        format!("{state} {what} on each {side} host")
    } else {
        format!("{state} {what} on the {side}")
    }
}

/// A state name as a file name part: letters, digits, `_` and `-` kept.
fn file_safe(state: &str) -> String {
    state
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What one chart draws.
struct ChartSpec<'a> {
    title: &'a str,
    y_desc: &'static str,
    y: YAxis,
    keys: &'a [Key<'a>],
    runs: &'a [RunSeries],
}

/// Register the bundled font with plotters once; every chart needs it.
fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok()) {
        Ok(())
    } else {
        Err(Error::env(
            "the chart font compiled into twlab cannot be read",
        ))
    }
}

fn font(size: f64) -> TextStyle<'static> {
    (FAMILY, size).into_font().color(&BLACK)
}

/// Draw one chart as an SVG document.
fn render_svg(spec: &ChartSpec) -> Result<String> {
    ensure_font()?;
    let fail = |e: &dyn Display| Error::env(format!("cannot draw the chart {:?}: {e}", spec.title));
    let entries = legend_entries(spec);
    let rows = {
        let mut scratch = String::new();
        let root = SVGBackend::with_string(&mut scratch, (WIDTH, HEIGHT)).into_drawing_area();
        legend_rows(&root, &entries).map_err(|e| fail(&e))?.len()
    };
    let extra = rows.saturating_sub(LEGEND_ROWS_IN_HEIGHT) as u32 * LEGEND_ROW as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT + extra)).into_drawing_area();
        draw(&root, spec, &entries).map_err(|e| fail(&e))?;
        root.present().map_err(|e| fail(&e))?;
    }
    Ok(svg)
}

type DrawResult<T> = std::result::Result<T, DrawingAreaErrorKind<std::io::Error>>;

fn draw(
    root: &DrawingArea<SVGBackend, Shift>,
    spec: &ChartSpec,
    entries: &[Entry],
) -> DrawResult<()> {
    root.fill(&WHITE)?;
    let area = root.titled(spec.title, font(TITLE_SIZE))?;

    // The legend gets its own strip under the title, so it never hides a line.
    let rows = legend_rows(&area, entries)?;
    let (legend_area, plot_area) = area.split_vertically(rows.len() as i32 * LEGEND_ROW + 8);
    draw_legend(&legend_area, &rows, LEGEND_ROW)?;

    let x_max = spec
        .runs
        .iter()
        .flat_map(|r| r.points.iter().map(|p| p.0))
        .fold(0.0, f64::max);
    let x_max = if x_max > 0.0 { x_max } else { 1.0 };
    let y_peak = spec
        .runs
        .iter()
        .flat_map(|r| r.points.iter().map(|p| p.1))
        .fold(0.0, f64::max);
    // Headroom above the highest line; at least 0..5 so a flat zero still
    // gets an axis with ticks. Counts get whole-number ticks: no more tick
    // labels than whole numbers on the axis.
    let (y_max, y_labels) = match spec.y {
        YAxis::Count => {
            let peak = y_peak.round();
            let max = (peak + (peak / 12.0).floor() + 1.0).max(5.0);
            (max, (max as usize).min(10))
        }
        YAxis::Rate => ((y_peak * 13.0 / 12.0).max(1.0), 10),
    };
    let fine = spec.y == YAxis::Rate && y_max < 20.0;

    let mut chart = ChartBuilder::on(&plot_area)
        .margin_left(12)
        .margin_right(32)
        .margin_top(6)
        .margin_bottom(8)
        .x_label_area_size(62)
        .y_label_area_size(96)
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
    chart
        .configure_mesh()
        .x_desc("time since load start (s)")
        .y_desc(spec.y_desc)
        .axis_desc_style(font(AXIS_DESC_SIZE))
        .label_style(font(TICK_SIZE).color(&AXIS))
        .axis_style(AXIS)
        .bold_line_style(GRID)
        .light_line_style(WHITE)
        .x_labels(10)
        .y_labels(y_labels)
        .x_label_formatter(&|x| seconds(*x))
        .y_label_formatter(&|y| {
            if fine {
                seconds(*y)
            } else {
                thousands(y.round().max(0.0) as u64)
            }
        })
        .draw()?;

    // Repeats share a colour; a slight transparency lets overlapping lines
    // of the same variant (or client host) show as a darker band rather
    // than one line.
    let mut drawn_keys: Vec<usize> = spec.runs.iter().map(|r| r.key).collect();
    drawn_keys.sort_unstable();
    drawn_keys.dedup();
    let several = spec.runs.len() > drawn_keys.len();
    for run in spec.runs {
        let colour = PALETTE[run.key % PALETTE.len()];
        let style = if several {
            colour.mix(0.8).stroke_width(2)
        } else {
            colour.stroke_width(3)
        };
        chart.draw_series(LineSeries::new(run.points.iter().copied(), style))?;
        // A run cut short may have a single sample: a line of one point
        // draws nothing, so mark its points.
        if run.points.len() < 3 {
            chart.draw_series(
                run.points
                    .iter()
                    .map(|p| Circle::new(*p, 4, colour.filled())),
            )?;
        }
    }
    Ok(())
}

/// A legend entry: the colour of a variant (or of one of its client
/// hosts) and its label.
struct Entry {
    colour: RGBColor,
    label: String,
}

fn legend_entries(spec: &ChartSpec) -> Vec<Entry> {
    spec.keys
        .iter()
        .enumerate()
        .filter_map(|(i, key)| {
            let runs = spec.runs.iter().filter(|r| r.key == i).count();
            let name = key.label();
            (runs > 0).then(|| Entry {
                colour: PALETTE[i % PALETTE.len()],
                label: if runs == 1 {
                    name
                } else {
                    format!("{name} ({runs} runs)")
                },
            })
        })
        .collect()
}

const SWATCH: i32 = 30;
const SWATCH_GAP: i32 = 8;
const ENTRY_GAP: i32 = 34;

/// The legend entries laid out in centred rows that fit the width, each
/// entry with its x offset.
fn legend_rows<'e>(
    area: &DrawingArea<SVGBackend, Shift>,
    entries: &'e [Entry],
) -> DrawResult<Vec<Vec<(i32, &'e Entry)>>> {
    let width = area.dim_in_pixel().0 as i32 - 40;
    let style = font(LEGEND_SIZE);
    let mut rows: Vec<Vec<(i32, &Entry)>> = Vec::new();
    let mut widths: Vec<i32> = Vec::new();
    let mut x = 0;
    for e in entries {
        let (text_w, _) = area.estimate_text_size(&e.label, &style)?;
        let w = SWATCH + SWATCH_GAP + text_w as i32;
        if rows.is_empty() || (x > 0 && x + ENTRY_GAP + w > width) {
            rows.push(Vec::new());
            widths.push(0);
            x = 0;
        } else if x > 0 {
            x += ENTRY_GAP;
        }
        if let Some(row) = rows.last_mut() {
            row.push((x, e));
        }
        x += w;
        if let Some(last) = widths.last_mut() {
            *last = x;
        }
    }
    // Centre each row.
    let full = area.dim_in_pixel().0 as i32;
    for (row, w) in rows.iter_mut().zip(widths) {
        let shift = ((full - w) / 2).max(0);
        for (x, _) in row.iter_mut() {
            *x += shift;
        }
    }
    Ok(rows)
}

fn draw_legend(
    area: &DrawingArea<SVGBackend, Shift>,
    rows: &[Vec<(i32, &Entry)>],
    row_height: i32,
) -> DrawResult<()> {
    let style = font(LEGEND_SIZE).pos(plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Left,
        plotters::style::text_anchor::VPos::Center,
    ));
    for (i, row) in rows.iter().enumerate() {
        let y = i as i32 * row_height + row_height / 2 + 4;
        for (x, e) in row {
            area.draw(&PathElement::new(
                vec![(*x, y), (*x + SWATCH, y)],
                e.colour.stroke_width(4),
            ))?;
            area.draw(&Text::new(
                e.label.clone(),
                (*x + SWATCH + SWATCH_GAP, y),
                style.clone(),
            ))?;
        }
    }
    Ok(())
}

/// Seconds on the time axis: `30`, `2.5`.
fn seconds(x: f64) -> String {
    let r = (x * 10.0).round() / 10.0;
    if r.fract() == 0.0 {
        format!("{r:.0}")
    } else {
        format!("{r:.1}")
    }
}

/// A count with thin spaces between thousands: `12 000`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('\u{2009}');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
