//! The report's pieces: the latency distribution plot and the table's
//! cells with ratios to ours.

use crate::{Row, QUANTILES};

/// Writes an SVG of each system's sequential latency distribution.
pub(crate) fn plot(rows: &[Row], path: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;
    let root = SVGBackend::new(path, (900, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = rows
        .iter()
        .flat_map(|r| r.pcts.iter().copied())
        .fold(1.0f64, f64::max)
        * 1.5;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Sequential call latency by percentile (µs, log scale)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0usize..QUANTILES.len() - 1, (1.0f64..max).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(QUANTILES.len())
        .x_label_formatter(&|i| format!("p{}", QUANTILES.get(*i).map(|q| q * 100.0).unwrap_or(0.0)))
        .y_desc("µs")
        .draw()?;
    for (i, r) in rows
        .iter()
        .enumerate()
        .filter(|(_, r)| r.pcts.len() == QUANTILES.len())
    {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(
                r.pcts.iter().enumerate().map(|(x, y)| (x, y.max(1.0))),
                color.stroke_width(2),
            ))?
            .label(r.name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

impl Row {
    /// The request/reply columns (p50, p99, @16, @256, 64 KiB), each with
    /// its ratio to `base`.
    pub(crate) fn call_cells(&self, base: &Row) -> String {
        [
            cell(self.p50_us, base.p50_us),
            cell(self.p99_us, base.p99_us),
            cell(self.rate16, base.rate16),
            cell(self.rate256, base.rate256),
            cell(self.rate64k, base.rate64k),
        ]
        .join(" | ")
    }
}

pub(crate) fn cell(v: Option<f64>, base: Option<f64>) -> String {
    match (v, base) {
        (Some(v), Some(b)) if b > 0.0 => {
            let ratio = v / b;
            format!("{v:.0} ({ratio:.2}×)")
        }
        (Some(v), _) => format!("{v:.0}"),
        (None, _) => "–".into(),
    }
}
