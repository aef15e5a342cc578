//! density.svg: pps and RTT p50 of the busy pair against N, one line per backend.

use std::path::Path;

use anyhow::Result;
use plotters::prelude::*;

use super::report::{DensityResults, DensityRow};
use crate::bench::plot::{color_of, err};
use crate::bench::report::Results;

/// What one panel shows.
struct Panel {
    title: &'static str,
    unit: &'static str,
    value: fn(&DensityRow) -> Option<f64>,
}

const PANELS: [Panel; 2] = [
    Panel {
        title: "one flow, 64 B",
        unit: "kpps",
        value: |r| r.throughput.as_ref().map(|t| t.pps / 1e3),
    },
    Panel {
        title: "round trip p50, 64 B",
        unit: "µs",
        value: |r| r.latency.as_ref().map(|l| l.p50_us),
    },
];

/// Draws both panels side by side into `path`.
pub fn write(r: &Results, d: &DensityResults, path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (1100, 450)).into_drawing_area();
    root.fill(&WHITE).map_err(err("background"))?;
    let areas = root.split_evenly((1, 2));
    for (area, panel) in areas.iter().zip(&PANELS) {
        draw_panel(r, d, area, panel)?;
    }
    root.present().map_err(err("file"))?;
    Ok(())
}

/// The backends of the rows, in order.
fn backends(d: &DensityResults) -> Vec<&str> {
    let mut v: Vec<&str> = Vec::new();
    for row in &d.rows {
        if !v.contains(&row.backend.as_str()) {
            v.push(&row.backend);
        }
    }
    v
}

fn draw_panel(
    r: &Results,
    d: &DensityResults,
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    p: &Panel,
) -> Result<()> {
    let y_max = d
        .rows
        .iter()
        .filter_map(p.value)
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.15;
    let x_max = d.ports.iter().copied().max().unwrap_or(2).max(4) as f64 * 1.5;
    let mut chart = ChartBuilder::on(area)
        .caption(format!("{} vs ports (N)", p.title), ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((1.5f64..x_max).log_scale(), 0f64..y_max)
        .map_err(err("axes"))?;
    chart
        .configure_mesh()
        .x_desc("ports on the parent (log scale)")
        .y_desc(p.unit)
        .draw()
        .map_err(err("mesh"))?;
    for b in backends(d) {
        let color = color_of(r, b);
        let pts: Vec<(f64, f64)> = d
            .rows
            .iter()
            .filter(|row| row.backend == b)
            .filter_map(|row| (p.value)(row).map(|v| (row.ports as f64, v)))
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(err("line"))?
            .label(b)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.into_iter().map(|pt| Circle::new(pt, 4, color.filled())))
            .map_err(err("points"))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerLeft)
        .draw()
        .map_err(err("legend"))?;
    Ok(())
}
