//! The report's charts, drawn on the server as SVG with plotters, so that print and screen
//! match and need no script. Each chart is an `<svg role="img">` with its title as its name
//! and a caption; the figures are in the report's text as well.

use plotters::prelude::*;

/// One series of a bar chart.
pub struct Series<'a> {
    pub name: &'a str,
    pub values: Vec<f64>,
    pub colour: RGBColor,
}

const INK: RGBColor = RGBColor(17, 17, 17);
/// Colours with at least 3:1 contrast against white (for bars, as for text's larger sizes).
pub const DARK: RGBColor = RGBColor(17, 17, 17);
pub const RED: RGBColor = RGBColor(163, 0, 0);
pub const GREEN: RGBColor = RGBColor(27, 94, 32);
pub const BLUE: RGBColor = RGBColor(0, 71, 171);

const WIDTH: u32 = 720;
const HEIGHT: u32 = 260;

/// Grouped bars: one group per label, one bar per series; an optional line (`target`, e.g.
/// what the schedule asked for) drawn over them.
pub fn bars(
    title: &str,
    labels: &[String],
    series: &[Series<'_>],
    target: Option<&Series<'_>>,
    y_label: &str,
) -> String {
    let mut svg = String::new();
    let groups = labels.len().max(1);
    let top =
        series.iter().chain(target).flat_map(|series| series.values.iter().copied()).fold(0.0_f64, f64::max).max(1.0)
            * 1.15;
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .caption(title, ("sans-serif", 24))
            .x_label_area_size(34)
            .y_label_area_size(44)
            .build_cartesian_2d(0f64..groups as f64, 0f64..top)?;
        let label_every = (groups / 12).max(1);
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(groups.min(24) + 1)
            .x_label_formatter(&|x| {
                let index = x.floor() as usize;
                if (x - x.floor()).abs() < f64::EPSILON && index < labels.len() && index % label_every == 0 {
                    labels[index].clone()
                } else {
                    String::new()
                }
            })
            .y_desc(y_label)
            .axis_desc_style(("sans-serif", 17))
            .label_style(("sans-serif", 17))
            .draw()?;
        let width = 0.8 / series.len().max(1) as f64;
        for (k, one) in series.iter().enumerate() {
            let colour = one.colour;
            chart
                .draw_series(one.values.iter().enumerate().map(|(i, value)| {
                    let left = i as f64 + 0.1 + k as f64 * width;
                    Rectangle::new([(left, 0.0), (left + width * 0.92, *value)], colour.filled())
                }))?
                .label(one.name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], colour.filled()));
        }
        if let Some(target) = target {
            let colour = target.colour;
            chart
                .draw_series(LineSeries::new(
                    target.values.iter().enumerate().map(|(i, value)| (i as f64 + 0.5, *value)),
                    colour.stroke_width(3),
                ))?
                .label(target.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], colour.stroke_width(3)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(INK)
            .label_font(("sans-serif", 17))
            .draw()?;
        root.present()?;
        Ok(())
    })();
    if let Err(error) = drawn {
        tracing::error!(%error, title, "a chart could not be drawn");
        return String::new();
    }
    accessible(&svg, title)
}

/// The SVG as an image with a name (screen readers read the title, not the marks), scaled
/// to its container.
fn accessible(svg: &str, title: &str) -> String {
    let name = minijinja::HtmlEscape(title).to_string();
    svg.replacen(
        &format!("<svg width=\"{WIDTH}\" height=\"{HEIGHT}\" "),
        &format!("<svg class=\"chart\" role=\"img\" aria-label=\"{name}\" preserveAspectRatio=\"xMidYMid meet\" "),
        1,
    )
    .replacen('>', &format!("><title>{name}</title>"), 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_is_a_named_svg_of_presentation_attributes_only() {
        let labels: Vec<String> = (0..24).map(|hour| format!("{hour:02}")).collect();
        let svg = bars(
            "Checks per hour",
            &labels,
            &[Series { name: "checks", values: (0..24).map(f64::from).collect(), colour: DARK }],
            Some(&Series { name: "asked for", values: vec![4.0; 24], colour: RED }),
            "checks",
        );
        assert!(svg.starts_with("<svg class=\"chart\" role=\"img\" aria-label=\"Checks per hour\""), "{}", &svg[..200]);
        assert!(svg.contains("<title>Checks per hour</title>"));
        assert!(svg.matches("<rect").count() >= 24, "a bar per hour");
        assert!(svg.contains("asked for"), "the legend names the line");
        // The page's Content-Security-Policy allows no inline style.
        assert!(!svg.contains("style="), "no style attribute");
        assert!(svg.trim_end().ends_with("</svg>"));
    }
}
