//! A comparison of repeated builds of one image: for each build, which
//! layers came from the cache, and how long the whole build took. Drawn as
//! inline SVG without scripts; text takes the page's colour, so it reads in
//! every theme.

use crate::builds::Build;

use super::{Labels, escape};

/// One build of the series.
pub struct Bar<'a> {
    pub build: &'a Build,
    pub seconds: f64,
}

const ROW: usize = 26;
const LABEL: usize = 70;
const CELL: usize = 14;
const CACHED: &str = "#3fb950";
const BUILT: &str = "#d29922";
const BASE: &str = "#8b949e";

/// The chart for a series of builds of `tag`, oldest first.
pub fn svg(tag: &str, bars: &[Bar<'_>], labels: &Labels) -> String {
    let cells = bars.iter().map(|b| b.build.steps.len()).max().unwrap_or(0);
    let strip = cells * CELL + 10;
    let time_width = 260;
    let longest = bars
        .iter()
        .map(|b| b.seconds)
        .fold(0.0_f64, f64::max)
        .max(0.001);
    let width = (LABEL + strip + time_width + 80).max(LABEL + 420);
    let height = 34 + bars.len() * ROW + 24;

    let mut out = format!(
        "<svg class=\"wb-chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" role=\"img\" aria-label=\"{title}\">",
        title = escape(&format!("{}: {tag}", labels.chart_title))
    );
    out.push_str(&format!(
        "<text x=\"0\" y=\"16\" fill=\"currentColor\" font-weight=\"600\" font-size=\"13\">{}: {}</text>",
        escape(labels.chart_title),
        escape(tag)
    ));

    for (n, bar) in bars.iter().enumerate() {
        let y = 34 + n * ROW;
        out.push_str(&format!(
            "<text x=\"0\" y=\"{}\" fill=\"currentColor\" font-size=\"12\">Build {}</text>",
            y + 12,
            n + 1
        ));
        for (i, step) in bar.build.steps.iter().enumerate() {
            let colour = if step.base {
                BASE
            } else if step.cached {
                CACHED
            } else {
                BUILT
            };
            let state = if step.base {
                labels.base_image
            } else if step.cached {
                labels.from_cache
            } else {
                labels.rebuilt
            };
            out.push_str(&format!(
                "<rect x=\"{}\" y=\"{y}\" width=\"{}\" height=\"16\" rx=\"2\" fill=\"{colour}\"><title>{}: {}</title></rect>",
                LABEL + i * CELL,
                CELL - 3,
                escape(&step.instruction),
                escape(state)
            ));
        }
        let length = ((bar.seconds / longest) * time_width as f64).max(2.0);
        let x = LABEL + strip;
        out.push_str(&format!(
            "<rect x=\"{x}\" y=\"{}\" width=\"{length:.1}\" height=\"10\" rx=\"2\" fill=\"currentColor\" opacity=\"0.55\"/>",
            y + 3
        ));
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" fill=\"currentColor\" font-size=\"12\">{}</text>",
            x as f64 + length + 6.0,
            y + 12,
            escape(&labels.seconds(bar.seconds))
        ));
    }

    // The legend has a row of its own, its entries side by side.
    let y = 34 + bars.len() * ROW + 12;
    let entries = [
        (Some(CACHED), labels.from_cache),
        (Some(BUILT), labels.rebuilt),
        (None, labels.chart_time),
    ];
    let mut x = LABEL;
    for (colour, text) in entries {
        match colour {
            Some(colour) => {
                out.push_str(&format!(
                    "<rect x=\"{x}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"{colour}\"/>",
                    y - 9
                ));
                x += 14;
            }
            None => {
                out.push_str(&format!("<rect x=\"{x}\" y=\"{}\" width=\"18\" height=\"6\" fill=\"currentColor\" opacity=\"0.55\"/>", y - 7));
                x += 22;
            }
        }
        out.push_str(&format!(
            "<text x=\"{x}\" y=\"{y}\" fill=\"currentColor\" font-size=\"11\">{}</text>",
            escape(text)
        ));
        x += text.chars().count() * 7 + 20;
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builds::{BuildStep, Builder};

    fn build(cached: &[bool]) -> Build {
        let steps = cached
            .iter()
            .enumerate()
            .map(|(i, c)| BuildStep {
                index: i + 1,
                total: cached.len(),
                instruction: format!("RUN step <{i}>"),
                stage: None,
                cached: *c,
                base: false,
                seconds: None,
                failed: false,
            })
            .collect();
        Build {
            builder: Builder::Legacy,
            steps,
        }
    }

    #[test]
    fn draws_one_row_per_build_with_cached_and_built_layers() {
        let labels = Labels::for_lang(Some("de"));
        let first = build(&[false, false]);
        let second = build(&[true, true]);
        let bars = [
            Bar {
                build: &first,
                seconds: 6.5,
            },
            Bar {
                build: &second,
                seconds: 0.9,
            },
        ];
        let svg = svg("python-webapp", &bars, &labels);
        assert_eq!(
            svg.matches(BUILT).count(),
            3,
            "two built layers and the legend"
        );
        assert_eq!(
            svg.matches(CACHED).count(),
            3,
            "two cached layers and the legend"
        );
        assert!(svg.contains("6,50 s") && svg.contains("0,90 s") && svg.contains("Build 2"));
        assert!(
            svg.contains("RUN step &lt;0&gt;"),
            "instructions are escaped"
        );
        assert!(
            !svg.contains("<script") && !svg.contains('\n'),
            "no script and no line breaks"
        );
    }
}
