//! Unit tests of the parent module (charts).

use super::*;
use crate::common::counts::Counts;
use crate::scenario::ClientLines;

fn sample(variant: &str, run: &str, side: Side, source: Source, t: f64, tw: u64) -> Sample {
    let mut counts = Counts::new();
    counts.insert("ESTABLISHED".into(), 100);
    if tw > 0 {
        counts.insert("TIME_WAIT".into(), tw);
    }
    Sample {
        t,
        variant: variant.into(),
        repeat: 1,
        run_id: run.into(),
        host: side,
        source,
        is_final: false,
        counts,
        per_client: Vec::new(),
        peers: None,
    }
}

/// Two variants, three repeats each, a minute of samples; TIME_WAIT
/// only in the server's sockets and conntrack (the client sees none).
fn samples() -> Vec<Sample> {
    let mut out = Vec::new();
    for repeat in 1..=3u32 {
        for (variant, level) in [("reuse-off", 12_000.0), ("reuse-on", 7_000.0)] {
            let run = format!("{variant}-{repeat}");
            for step in 1..=60 {
                let t = f64::from(step);
                let fill = (t / 40.0).min(1.0);
                let tw = (level * fill) as u64 + u64::from(repeat) * 150;
                for source in [Source::Sockets, Source::Conntrack] {
                    let mut s = sample(variant, &run, Side::Server, source, t, tw);
                    s.repeat = repeat;
                    out.push(s);
                    let mut c = sample(variant, &run, Side::Client, source, t, 0);
                    c.repeat = repeat;
                    out.push(c);
                }
            }
            let mut last = sample(variant, &run, Side::Server, Source::Sockets, 60.4, 1);
            last.is_final = true;
            out.push(last);
        }
    }
    out
}

/// What is collected, with these states charted (the rest as by default).
fn states(names: &[&str]) -> CollectSpec {
    CollectSpec {
        states: names.iter().map(|s| s.to_string()).collect(),
        ..CollectSpec::default()
    }
}

#[test]
fn one_chart_per_side_source_and_state_that_was_seen() {
    let dir = tempfile::tempdir().unwrap();
    let charts = write_charts(dir.path(), &samples(), &states(&["TIME_WAIT", "SYN_RECV"])).unwrap();
    let paths: Vec<&str> = charts.iter().map(|c| c.path.as_str()).collect();
    // No client chart for TIME_WAIT (never counted there), none for SYN_RECV.
    assert_eq!(
        paths,
        [
            "charts/server-sockets-TIME_WAIT.svg",
            "charts/server-conntrack-TIME_WAIT.svg"
        ]
    );
    assert_eq!(charts[0].title, "TIME_WAIT sockets on the server");
    assert_eq!(charts[1].title, "TIME_WAIT conntrack entries on the server");
    for c in &charts {
        assert!(dir.path().join(&c.path).is_file(), "{}", c.path);
    }
}

#[test]
fn a_chart_has_title_axes_legend_and_a_line_per_run() {
    let dir = tempfile::tempdir().unwrap();
    let charts = write_charts(dir.path(), &samples(), &states(&["TIME_WAIT"])).unwrap();
    let svg = std::fs::read_to_string(dir.path().join(&charts[0].path)).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    assert!(svg.contains("viewBox=\"0 0 960 480\""), "{svg}");
    for text in [
        "TIME_WAIT sockets on the server",
        "time since load start (s)",
        ">\nsockets\n<",
        "reuse-off (3 runs)",
        "reuse-on (3 runs)",
        "font-family=\"DejaVu Sans, Verdana, sans-serif\"",
    ] {
        assert!(svg.contains(text), "no {text:?} in the SVG");
    }
    // Six runs: a line each in its variant's colour, three per colour,
    // and one legend swatch per variant.
    for colour in ["#4E79A7", "#F28E2B"] {
        let line = format!("opacity=\"0.8\" stroke=\"{colour}\" stroke-width=\"2\"");
        let swatch = format!("opacity=\"1\" stroke=\"{colour}\" stroke-width=\"4\"");
        assert_eq!(svg.matches(&line).count(), 3, "{colour} in {svg}");
        assert_eq!(svg.matches(&swatch).count(), 1, "{colour} in {svg}");
    }
    let conntrack = std::fs::read_to_string(dir.path().join(&charts[1].path)).unwrap();
    assert!(conntrack.contains("conntrack entries"), "{conntrack}");
}

#[test]
fn single_runs_are_labelled_by_name_and_short_runs_get_points() {
    let dir = tempfile::tempdir().unwrap();
    let samples = vec![
        sample("off", "a", Side::Client, Source::Sockets, 1.0, 3),
        sample("on", "b", Side::Client, Source::Sockets, 1.0, 1),
        sample("on", "b", Side::Client, Source::Sockets, 2.0, 2),
    ];
    let charts = write_charts(dir.path(), &samples, &states(&["TIME_WAIT"])).unwrap();
    assert_eq!(charts.len(), 1);
    let svg = std::fs::read_to_string(dir.path().join(&charts[0].path)).unwrap();
    assert!(
        svg.contains(">\noff\n<") && svg.contains(">\non\n<"),
        "{svg}"
    );
    assert_eq!(svg.matches("<circle").count(), 3, "{svg}");
}

#[test]
fn no_samples_no_charts_and_no_folder() {
    let dir = tempfile::tempdir().unwrap();
    let charts = write_charts(dir.path(), &[], &states(&["TIME_WAIT"])).unwrap();
    assert!(charts.is_empty());
    assert!(!dir.path().join(CHARTS_DIR).exists());
}

#[test]
fn an_unwritable_directory_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "").unwrap();
    let err = write_charts(&file, &samples(), &states(&["TIME_WAIT"])).unwrap_err();
    assert!(err.to_string().contains("not-a-dir"), "{err}");
}

/// A folder where one chart's file goes: that chart fails, naming its
/// file, and the next one is written all the same.
#[test]
fn a_chart_that_cannot_be_written_does_not_stop_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let samples = samples();
    let plan = plan(&samples, &[], &states(&["TIME_WAIT"]));
    let planned: Vec<String> = plan.charts().into_iter().map(|c| c.path).collect();
    assert_eq!(
        planned,
        [
            "charts/server-sockets-TIME_WAIT.svg",
            "charts/server-conntrack-TIME_WAIT.svg"
        ]
    );
    let blocked = dir.path().join(&planned[0]);
    std::fs::create_dir_all(&blocked).unwrap();
    let drawn = write_planned(dir.path(), &plan);
    assert_eq!(drawn.errors.len(), 1);
    let err = drawn.errors[0].to_string();
    assert!(err.contains(&blocked.display().to_string()), "{err}");
    let written: Vec<&str> = drawn.charts.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(written, [planned[1].as_str()]);
    assert!(dir.path().join(&planned[1]).is_file());
}

#[test]
fn axis_labels_are_formatted_for_people() {
    assert_eq!(seconds(30.0), "30");
    assert_eq!(seconds(2.5), "2.5");
    assert_eq!(thousands(12_000), "12\u{2009}000");
    assert_eq!(thousands(999), "999");
    assert_eq!(thousands(1_234_567), "1\u{2009}234\u{2009}567");
}

/// Render a chart to pixels the way a viewer would, with no system
/// font (only the bundled one), and check that lines and text show.
#[test]
fn a_chart_renders_to_pixels() {
    let dir = tempfile::tempdir().unwrap();
    let charts = write_charts(dir.path(), &samples(), &states(&["TIME_WAIT"])).unwrap();
    let svg = std::fs::read(dir.path().join(&charts[0].path)).unwrap();
    let mut options = resvg::usvg::Options::default();
    options.fontdb_mut().load_font_data(FONT.to_vec());
    options.fontdb_mut().set_sans_serif_family("DejaVu Sans");
    let tree = resvg::usvg::Tree::from_data(&svg, &options).unwrap();
    let size = tree.size().to_int_size();
    assert_eq!((size.width(), size.height()), (WIDTH, HEIGHT));
    let mut pixmap = resvg::tiny_skia::Pixmap::new(size.width(), size.height()).unwrap();
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::default(),
        &mut pixmap.as_mut(),
    );
    let px = |x: u32, y: u32| {
        let p = pixmap.pixel(x, y).unwrap();
        (p.red(), p.green(), p.blue())
    };
    let pixels = (0..HEIGHT).flat_map(|y| (0..WIDTH).map(move |x| (x, y)));
    let (mut dark, mut blue, mut orange) = (0, 0, 0);
    for (x, y) in pixels {
        match px(x, y) {
            (r, g, b) if r < 80 && g < 80 && b < 80 => dark += 1,
            (0x4E, 0x79, 0xA7) => blue += 1,
            (0xF2, 0x8E, 0x2B) => orange += 1,
            _ => {}
        }
    }
    // Text is drawn (dark pixels: title, labels), and both variants' lines.
    assert!(dark > 2_000, "{dark} dark pixels");
    assert!(blue > 100 && orange > 100, "blue {blue}, orange {orange}");
    // The title is at the top centre.
    let title_dark = (0..40)
        .flat_map(|y| (300..660).map(move |x| (x, y)))
        .filter(|(x, y)| px(*x, *y).0 < 80)
        .count();
    assert!(title_dark > 200, "{title_dark} dark pixels in the title");
}

/// Client-side samples of a run on four client hosts, each host with its
/// own TIME_WAIT level (host i has `100 * (i + 1)` at the end), their sum
/// in `counts`; and the server's samples of the same run.
fn four_hosts(variant: &str, run: &str, repeat: u32) -> Vec<Sample> {
    client_hosts(variant, run, repeat, 4)
}

/// [`four_hosts`] on `hosts` client hosts.
fn client_hosts(variant: &str, run: &str, repeat: u32, hosts: u64) -> Vec<Sample> {
    let mut out = Vec::new();
    for step in 1..=20u32 {
        let t = f64::from(step);
        for source in [Source::Sockets, Source::Conntrack] {
            let per_client: Vec<Counts> = (1..=hosts)
                .map(|host| {
                    let mut c = Counts::new();
                    c.insert("ESTABLISHED".into(), 25);
                    c.insert("TIME_WAIT".into(), host * 100 * u64::from(step) / 20);
                    c
                })
                .collect();
            let sum: u64 = per_client.iter().map(|c| c["TIME_WAIT"]).sum();
            let mut c = sample(variant, run, Side::Client, source, t, sum);
            c.repeat = repeat;
            c.per_client = per_client;
            out.push(c);
            let mut s = sample(variant, run, Side::Server, source, t, 10 * u64::from(step));
            s.repeat = repeat;
            out.push(s);
        }
    }
    out
}

/// One run on one client host (no `per_client`), then one on four: the
/// shape of `scenarios/many_clients.yaml`.
fn one_then_four() -> Vec<Sample> {
    let mut out = Vec::new();
    for step in 1..=20u32 {
        let t = f64::from(step);
        for source in [Source::Sockets, Source::Conntrack] {
            out.push(sample(
                "one-client",
                "a",
                Side::Client,
                source,
                t,
                30 * u64::from(step),
            ));
            out.push(sample(
                "one-client",
                "a",
                Side::Server,
                source,
                t,
                5 * u64::from(step),
            ));
        }
    }
    out.extend(four_hosts("four-clients", "b", 1));
    out
}

fn per_host(names: &[&str]) -> CollectSpec {
    CollectSpec {
        client_lines: ClientLines::PerHost,
        ..states(names)
    }
}

/// A line (not a legend swatch) of this colour, drawn alone or among repeats.
fn lines_of(svg: &str, colour: &str) -> usize {
    let alone = format!("opacity=\"1\" stroke=\"{colour}\" stroke-width=\"3\"");
    let among = format!("opacity=\"0.8\" stroke=\"{colour}\" stroke-width=\"2\"");
    svg.matches(&alone).count() + svg.matches(&among).count()
}

/// Tableau colours of the palette in order: blue, orange, green, red,
/// purple, brown.
const COLOURS: [&str; 6] = [
    "#4E79A7", "#F28E2B", "#59A14F", "#E15759", "#B07AA1", "#9C755F",
];

#[test]
fn per_host_client_charts_draw_a_line_per_client_host() {
    let dir = tempfile::tempdir().unwrap();
    let charts = write_charts(dir.path(), &one_then_four(), &per_host(&["TIME_WAIT"])).unwrap();
    let listed: Vec<(&str, &str)> = charts
        .iter()
        .map(|c| (c.path.as_str(), c.title.as_str()))
        .collect();
    // The files are the same as with total lines; the client charts' titles
    // (and their `per_host`) say that their lines are the hosts'.
    let per_host: Vec<bool> = charts.iter().map(|c| c.per_host).collect();
    assert_eq!(per_host, [false, true, false, true]);
    assert_eq!(
        listed,
        [
            (
                "charts/server-sockets-TIME_WAIT.svg",
                "TIME_WAIT sockets on the server"
            ),
            (
                "charts/client-sockets-TIME_WAIT.svg",
                "TIME_WAIT sockets on each client host"
            ),
            (
                "charts/server-conntrack-TIME_WAIT.svg",
                "TIME_WAIT conntrack entries on the server"
            ),
            (
                "charts/client-conntrack-TIME_WAIT.svg",
                "TIME_WAIT conntrack entries on each client host"
            ),
        ]
    );
    let read = |i: usize| std::fs::read_to_string(dir.path().join(&charts[i].path)).unwrap();

    let client = read(1);
    assert!(client.contains("viewBox=\"0 0 960 480\""), "{client}");
    // The one-client run keeps its line (its one host); the four-clients
    // run has a line per host instead of its sum, each in a colour of its
    // own after the variants' (blue, orange), each named in the legend.
    for label in [
        "one-client",
        "four-clients client 1",
        "four-clients client 2",
        "four-clients client 3",
        "four-clients client 4",
    ] {
        assert!(svg_has_label(&client, label), "no {label:?} in {client}");
    }
    assert!(!svg_has_label(&client, "four-clients"), "{client}");
    assert_eq!(lines_of(&client, COLOURS[0]), 1, "{client}");
    assert_eq!(lines_of(&client, COLOURS[1]), 0, "{client}");
    for colour in &COLOURS[2..6] {
        assert_eq!(lines_of(&client, colour), 1, "{colour} in {client}");
    }
    // The highest line is one-client's (600): the hosts' sum (1000) is not
    // drawn, so the axis (a little above the highest line) stops below it.
    assert!(client.contains(">\n600\n<"), "{client}");
    assert!(!client.contains(">\n1\u{2009}000\n<"), "{client}");

    // The server side has no hosts: a line per run, in the variants' colours.
    let server = read(0);
    assert!(svg_has_label(&server, "one-client"), "{server}");
    assert!(svg_has_label(&server, "four-clients"), "{server}");
    assert!(!server.contains("client 1"), "{server}");
    assert_eq!(lines_of(&server, COLOURS[0]), 1, "{server}");
    assert_eq!(lines_of(&server, COLOURS[1]), 1, "{server}");
    assert_eq!(lines_of(&server, COLOURS[2]), 0, "{server}");
}

/// A legend label as plotters writes it: alone between tags.
fn svg_has_label(svg: &str, label: &str) -> bool {
    svg.contains(&format!(">\n{label}\n<"))
}

#[test]
fn repeats_of_a_client_host_share_its_colour_and_legend_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut samples = four_hosts("four-clients", "b1", 1);
    samples.extend(four_hosts("four-clients", "b2", 2));
    let charts = write_charts(dir.path(), &samples, &per_host(&["TIME_WAIT"])).unwrap();
    let client = std::fs::read_to_string(dir.path().join(&charts[1].path)).unwrap();
    assert_eq!(charts[1].path, "charts/client-sockets-TIME_WAIT.svg");
    // One variant (blue, on the server's charts), then its four hosts.
    for (host, colour) in COLOURS[1..5].iter().enumerate() {
        let label = format!("four-clients client {} (2 runs)", host + 1);
        assert!(svg_has_label(&client, &label), "no {label:?} in {client}");
        let among = format!("opacity=\"0.8\" stroke=\"{colour}\" stroke-width=\"2\"");
        assert_eq!(client.matches(&among).count(), 2, "{colour} in {client}");
    }
    assert_eq!(lines_of(&client, COLOURS[0]), 0, "{client}");
}

/// With `total` (the default) the hosts' counts change nothing: every
/// chart is the one the same samples without them give, byte for byte.
#[test]
fn total_lines_draw_the_sum_whatever_the_hosts_counted() {
    let with_hosts = one_then_four();
    let without: Vec<Sample> = with_hosts
        .iter()
        .cloned()
        .map(|mut s| {
            s.per_client.clear();
            s
        })
        .collect();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let collect = states(&["TIME_WAIT", "ESTABLISHED"]);
    assert_eq!(collect.client_lines, ClientLines::Total);
    let charts = write_charts(a.path(), &with_hosts, &collect).unwrap();
    assert_eq!(charts, write_charts(b.path(), &without, &collect).unwrap());
    assert_eq!(charts.len(), 8);
    assert_eq!(charts[1].title, "TIME_WAIT sockets on the client");
    assert!(charts.iter().all(|c| !c.per_host));
    for c in &charts {
        let svg = std::fs::read_to_string(a.path().join(&c.path)).unwrap();
        assert_eq!(
            svg,
            std::fs::read_to_string(b.path().join(&c.path)).unwrap(),
            "{}",
            c.path
        );
        assert!(!svg.contains("client 1"), "{}: {svg}", c.path);
    }
    let client = std::fs::read_to_string(a.path().join(&charts[1].path)).unwrap();
    assert!(svg_has_label(&client, "four-clients"), "{client}");
    assert_eq!(lines_of(&client, COLOURS[1]), 1, "{client}");
}

/// `per_host` on runs of one client host each: nothing to split, so the
/// charts are the total ones.
#[test]
fn per_host_lines_of_single_host_runs_are_the_total_ones() {
    let samples = samples();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let total = write_charts(a.path(), &samples, &states(&["TIME_WAIT"])).unwrap();
    let hosts = write_charts(b.path(), &samples, &per_host(&["TIME_WAIT"])).unwrap();
    assert_eq!(total, hosts);
    for c in &total {
        assert_eq!(
            std::fs::read(a.path().join(&c.path)).unwrap(),
            std::fs::read(b.path().join(&c.path)).unwrap(),
            "{}",
            c.path
        );
    }
}

/// A legend of many client hosts takes more rows than a chart has room
/// for: the chart grows by those rows, so its plot keeps its height.
#[test]
fn many_client_hosts_make_a_taller_chart_not_a_smaller_plot() {
    let dir = tempfile::tempdir().unwrap();
    let samples = client_hosts("sixteen", "c", 1, 16);
    let charts = write_charts(dir.path(), &samples, &per_host(&["TIME_WAIT"])).unwrap();
    let client = std::fs::read_to_string(dir.path().join(&charts[1].path)).unwrap();
    assert!(svg_has_label(&client, "sixteen client 16"), "{client}");
    let points = |line: &str| -> Vec<(i32, i32)> {
        let Some(rest) = line.split("points=\"").nth(1) else {
            return Vec::new();
        };
        rest.split('"')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.split_once(','))
            .filter_map(|(x, y)| Some((x.parse().ok()?, y.parse().ok()?)))
            .collect()
    };
    // Legend rows: the distinct heights of the swatches.
    let mut rows: Vec<i32> = client
        .lines()
        .filter(|l| l.contains("stroke-width=\"4\""))
        .filter_map(|l| points(l).first().map(|p| p.1))
        .collect();
    rows.sort_unstable();
    rows.dedup();
    assert!(rows.len() > 2, "{rows:?}");
    let height = 480 + (rows.len() as i32 - 2) * 30;
    assert!(
        client.contains(&format!("viewBox=\"0 0 960 {height}\"")),
        "{client}"
    );
    // The x axis is as far above the bottom as in a chart of 480 (two
    // legend rows), where it is at 410.
    let axis = client
        .lines()
        .filter(|l| l.contains("stroke=\"#555555\""))
        .map(points)
        .find(|p| p.len() == 2 && p[0].1 == p[1].1 && p[1].0 - p[0].0 > 500);
    assert_eq!(axis.map(|p| height - p[0].1), Some(70), "{client}");
}
