//! `twlab report DIR --html`: the report as one HTML file to mail or attach.
//!
//! `report.md` shows well on GitHub, with the charts as images beside it in
//! `charts/`. Sent on its own, it loses them. The HTML rendering is the same
//! markdown ([`report::render_markdown`], so the two never disagree),
//! converted with pulldown-cmark, with each chart's SVG written into the
//! page instead of linked, and a few lines of CSS. It loads nothing from
//! anywhere: no stylesheet, font, script or image outside the file.
//!
//! A chart listed in `summary.json` but missing from the directory (a copy
//! without `charts/`) becomes a visible note in its place rather than an
//! error: the figures are still worth reading.

use crate::error::{Error, Result};
use crate::output::{Format, Written, report};
use crate::results::{self, Summary};
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd, html};
use std::path::Path;

/// Enough style for wide tables and charts to read well, in light and dark.
const CSS: &str = "\
:root { color-scheme: light dark; }
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif;
  line-height: 1.5; max-width: 72rem; margin: 2rem auto; padding: 0 1rem; }
h1, h2, h3 { line-height: 1.25; }
h2 { border-bottom: 1px solid #8884; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; display: block; overflow-x: auto; }
th, td { border: 1px solid #8886; padding: .25em .6em; white-space: nowrap; }
th { background: #8882; }
tr:nth-child(even) td { background: #8881; }
code { font-family: ui-monospace, 'DejaVu Sans Mono', monospace; font-size: .9em;
  background: #8882; padding: .1em .3em; border-radius: 3px; }
pre { background: #8882; padding: .8em; overflow-x: auto; }
pre code { background: none; padding: 0; }
blockquote { margin: 1em 0; padding: .2em 1em; border-left: .25em solid #8886; }
blockquote.markdown-alert-warning { border-left-color: #d29922; }
figure.chart { margin: 1em 0; }
figure.chart svg, span.chart svg { display: block; max-width: 100%; height: auto; background: #fff; border-radius: 4px; }
.missing { color: #d1242f; }
";

/// `report.html`, written by `twlab report DIR --html`.
pub struct Html;

impl Format for Html {
    fn name(&self) -> &'static str {
        "HTML page"
    }

    fn written(&self) -> Written {
        Written::OnRequest(results::HTML_FILE)
    }

    fn render(&self, summary: &Summary, run_dir: &Path) -> Result<String> {
        render_html(summary, run_dir)
    }
}

/// One self-contained HTML file for `twlab report DIR --html`: the markdown report as HTML with the charts inline.
pub fn render_html(summary: &Summary, dir: &Path) -> Result<String> {
    let markdown = report::render_markdown(summary);
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    options.insert(Options::ENABLE_STRIKETHROUGH);
    options.insert(Options::ENABLE_GFM);

    // Each chart image (`![title](charts/x.svg)`) becomes its SVG. An image
    // alone in its paragraph (as the report writes them) becomes a figure
    // in place of the paragraph; one within text, an inline span.
    // The report writes no HTML of its own, so any that shows up (a note or
    // a reason quoting `<something>`) is text, not markup.
    let parsed: Vec<Event> = Parser::new_ext(&markdown, options)
        .map(|e| match e {
            Event::Html(t) | Event::InlineHtml(t) => Event::Text(t),
            other => other,
        })
        .collect();
    let mut events: Vec<Event> = Vec::with_capacity(parsed.len());
    let mut i = 0;
    while i < parsed.len() {
        let chart = match &parsed[i] {
            Event::Start(Tag::Image { dest_url, .. }) => {
                summary.charts.iter().find(|c| *c.path == **dest_url)
            }
            _ => None,
        };
        let Some(chart) = chart else {
            events.push(parsed[i].clone());
            i += 1;
            continue;
        };
        // The image's end (alt text may hold nested images).
        let mut depth = 0usize;
        let mut end = i;
        for (j, e) in parsed.iter().enumerate().skip(i) {
            match e {
                Event::Start(Tag::Image { .. }) => depth += 1,
                Event::End(TagEnd::Image) => {
                    depth -= 1;
                    if depth == 0 {
                        end = j;
                        break;
                    }
                }
                _ => {}
            }
        }
        let alone = matches!(events.last(), Some(Event::Start(Tag::Paragraph)))
            && matches!(parsed.get(end + 1), Some(Event::End(TagEnd::Paragraph)));
        let svg = inline_chart(dir, &chart.path, &chart.title)?;
        if alone {
            events.pop();
            events.push(Event::Html(CowStr::from(format!(
                "<figure class=\"chart\" role=\"img\" aria-label=\"{}\">\n{svg}\n</figure>\n",
                escape(&chart.title)
            ))));
            i = end + 2;
        } else {
            events.push(Event::InlineHtml(CowStr::from(format!(
                "<span class=\"chart\" role=\"img\" aria-label=\"{}\">{svg}</span>",
                escape(&chart.title)
            ))));
            i = end + 1;
        }
    }
    let mut body = String::new();
    html::push_html(&mut body, events.into_iter());

    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>TIME_WAIT lab: {}</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n{body}</body>\n</html>\n",
        escape(&summary.scenario)
    ))
}

/// The SVG of a chart as HTML, or a note when the file is missing.
fn inline_chart(dir: &Path, path: &str, title: &str) -> Result<String> {
    // Only files inside the run directory are read into the page.
    let inside = Path::new(path)
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if !inside {
        return Ok(format!(
            "<span class=\"missing\">(chart “{}” not shown: {} is not inside the run directory)</span>",
            escape(title),
            escape(path)
        ));
    }
    let file = dir.join(path);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(format!(
                "<span class=\"missing\">(chart “{}” not found: {} is missing)</span>",
                escape(title),
                escape(path)
            ));
        }
        Err(e) => return Err(Error::io(file.display(), e)),
    };
    // An SVG file may open with an XML declaration or a doctype, which have
    // no place inside HTML: keep the document from `<svg` on.
    let Some(start) = text.find("<svg") else {
        return Err(Error::invalid(format!(
            "{}: not an SVG document",
            file.display()
        )));
    };
    Ok(text[start..].trim_end().to_string())
}

/// Text for HTML content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::metrics;
    use crate::common::counts::Counts;
    use crate::common::counts::Source;
    use crate::common::endpoint::Side;
    use crate::output::charts;
    use crate::results::{BySide, Chart, RunInfo, RunSummary, Sample, StateStats, VariantSummary};
    use crate::scenario::{CollectSpec, RoleSysctls};

    fn tw(n: u64) -> Counts {
        [("TIME_WAIT".to_string(), n)].into_iter().collect()
    }

    fn summary(name: &str) -> Summary {
        let run = |id: &str, n: u64| RunSummary {
            run_id: id.into(),
            repeat: 1,
            sockets: BySide {
                server: StateStats {
                    final_: tw(n),
                    peak: tw(n + 10),
                    steady_mean: [("TIME_WAIT".to_string(), n as f64)].into_iter().collect(),
                },
                client: StateStats::default(),
            },
            samples: 10,
            steady_from_secs: 5.0,
            ..Default::default()
        };
        let variants = vec![
            VariantSummary {
                name: "reuse-off".into(),
                sysctls: RoleSysctls::default(),
                runs: vec![run("a1", 1200)],
                params: Default::default(),
                kernel: Default::default(),
            },
            VariantSummary {
                name: "reuse-on".into(),
                sysctls: RoleSysctls::default(),
                runs: vec![run("b1", 700)],
                params: Default::default(),
                kernel: Default::default(),
            },
        ];
        Summary {
            scenario: name.into(),
            info: RunInfo {
                scenario_file: "scenarios/tw_reuse.yaml".into(),
                command: "twlab run scenarios/tw_reuse.yaml".into(),
                complete: true,
                order: "interleaved".into(),
                ..Default::default()
            },
            comparisons: metrics::compare(&variants),
            variants,
            expectations: vec![],
            charts: vec![],
        }
    }

    fn samples() -> Vec<Sample> {
        let mut out = Vec::new();
        for (variant, run, level) in [("reuse-off", "a1", 1200u64), ("reuse-on", "b1", 700)] {
            for t in 1..=10u64 {
                out.push(Sample {
                    t: t as f64,
                    variant: variant.into(),
                    repeat: 1,
                    run_id: run.into(),
                    host: Side::Server,
                    source: Source::Sockets,
                    is_final: false,
                    counts: tw(level * t / 10),
                    per_client: Vec::new(),
                    peers: None,
                });
            }
        }
        out
    }

    #[test]
    fn the_page_holds_the_report_and_its_charts_inline() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = summary("tw_reuse");
        s.charts = charts::write_charts(dir.path(), &samples(), &CollectSpec::default()).unwrap();
        assert_eq!(s.charts.len(), 1);
        let html = render_html(&s, dir.path()).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert!(
            html.contains("<title>TIME_WAIT lab: tw_reuse</title>"),
            "{html}"
        );
        assert!(html.contains("<h1>TIME_WAIT lab: tw_reuse</h1>"), "{html}");
        assert!(html.contains("<table>"), "{html}");
        assert!(html.contains("style=\"text-align: right\""), "{html}");
        // The chart is there as SVG, in a figure of its own, not as an image.
        assert_eq!(html.matches("<svg ").count(), 1, "{html}");
        assert!(
            html.contains(
                "<figure class=\"chart\" role=\"img\" aria-label=\"TIME_WAIT sockets on the server\">\n<svg "
            ),
            "{html}"
        );
        assert!(html.contains(">\nreuse-off\n<"), "the legend: {html}");
        assert!(!html.contains("<p><figure"), "{html}");
        // Self-contained: nothing is fetched.
        for outside in ["<img", "src=", "<link", "<script", "@import", "url("] {
            assert!(!html.contains(outside), "{outside} in {html}");
        }
    }

    #[test]
    fn a_missing_chart_is_a_note_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = summary("tw_reuse");
        s.charts = vec![
            Chart {
                title: "TIME_WAIT sockets on the server".into(),
                path: "charts/server-sockets-TIME_WAIT.svg".into(),
                per_host: false,
                counter: None,
            },
            Chart {
                title: "elsewhere".into(),
                path: "../secret.svg".into(),
                per_host: false,
                counter: None,
            },
        ];
        let html = render_html(&s, dir.path()).unwrap();
        assert!(
            html.contains("charts/server-sockets-TIME_WAIT.svg is missing"),
            "{html}"
        );
        assert!(
            html.contains("../secret.svg is not inside the run directory"),
            "{html}"
        );
        assert!(!html.contains("<svg"), "{html}");
    }

    #[test]
    fn a_chart_that_is_not_svg_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("charts")).unwrap();
        std::fs::write(dir.path().join("charts/x.svg"), "not a chart").unwrap();
        let mut s = summary("tw_reuse");
        s.charts = vec![Chart {
            title: "x".into(),
            path: "charts/x.svg".into(),
            per_host: false,
            counter: None,
        }];
        let err = render_html(&s, dir.path()).unwrap_err();
        assert!(err.to_string().contains("charts/x.svg"), "{err}");
    }

    #[test]
    fn html_in_the_summary_stays_text() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = summary("tw_reuse");
        s.info.notes = vec!["a <script>alert(1)</script> note".into()];
        let html = render_html(&s, dir.path()).unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(
            html.contains("a &lt;script&gt;alert(1)&lt;/script&gt; note"),
            "{html}"
        );
    }

    #[test]
    fn the_title_is_escaped() {
        let dir = tempfile::tempdir().unwrap();
        let html = render_html(&summary("a<b>&c"), dir.path()).unwrap();
        assert!(
            html.contains("<title>TIME_WAIT lab: a&lt;b&gt;&amp;c</title>"),
            "{html}"
        );
    }
}
