//! Unit tests of the parent module (charts).

use super::*;
use crate::common::counts::Counts;

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

fn states(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
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
    let plan = plan(&samples, &states(&["TIME_WAIT"]));
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
