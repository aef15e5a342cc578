//! SVG plots of a run: a latency CDF per (scenario, payload) and throughput bars per payload.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use super::report::{Results, ThroughputCell};
use super::topology::Scenario;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

pub(super) fn err<E: std::fmt::Debug>(what: &str) -> impl FnOnce(E) -> anyhow::Error + '_ {
    move |e| anyhow!("drawing {what}: {e:?}")
}

/// One color per backend across every plot: its position in the run's backend list.
pub(super) fn color_of(r: &Results, backend: &str) -> RGBColor {
    let i = r
        .backends
        .iter()
        .position(|b| b.backend == backend)
        .unwrap_or(r.backends.len());
    COLORS[i % COLORS.len()]
}

/// Writes every plot into `dir`; returns the files written.
pub fn write_all(r: &Results, dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut keys: Vec<(Scenario, usize)> =
        r.latency.iter().map(|c| (c.scenario, c.payload)).collect();
    keys.sort();
    keys.dedup();
    for (sc, payload) in keys {
        let path = dir.join(format!("latency_cdf_{}_{payload}.svg", sc.name()));
        latency_cdf(r, sc, payload, &path)?;
        files.push(path);
    }
    let mut payloads: Vec<usize> = r.throughput.iter().map(|c| c.payload).collect();
    payloads.sort();
    payloads.dedup();
    for payload in payloads {
        let path = dir.join(format!("throughput_{payload}.svg"));
        throughput_bars(r, payload, &path)?;
        files.push(path);
    }
    if let Some(d) = &r.density {
        let path = dir.join("density.svg");
        super::density::plot::write(r, d, &path)?;
        files.push(path);
    }
    Ok(files)
}

fn latency_cdf(r: &Results, sc: Scenario, payload: usize, path: &Path) -> Result<()> {
    let lines: Vec<(&str, &Vec<(f64, f64)>)> = r
        .latency
        .iter()
        .filter(|c| c.scenario == sc && c.payload == payload)
        .filter_map(|c| c.figures.as_ref().map(|f| (c.backend.as_str(), &f.cdf)))
        .collect();
    // Log x axis from the fastest sample to the largest p99.9: the body and the tail both stay
    // readable (the max is in the tables).
    let x_max = lines
        .iter()
        .flat_map(|(_, cdf)| cdf.iter().filter(|(q, _)| *q <= 0.999).map(|(_, us)| *us))
        .fold(1.0f64, f64::max)
        * 1.2;
    let x_min = lines
        .iter()
        .flat_map(|(_, cdf)| cdf.iter().map(|(_, us)| *us))
        .fold(x_max, f64::min)
        .max(0.1)
        * 0.8;
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(err("background"))?;
    let title = format!("RTT CDF, {}, {payload} B", sc.label());
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d((x_min..x_max).log_scale(), 0f64..1f64)
        .map_err(err("axes"))?;
    chart
        .configure_mesh()
        .x_desc("round trip (µs, log scale)")
        .y_desc("fraction of round trips")
        .draw()
        .map_err(err("mesh"))?;
    for (name, cdf) in &lines {
        let color = color_of(r, name);
        let pts: Vec<(f64, f64)> = cdf
            .iter()
            .map(|(q, us)| (us.clamp(x_min, x_max), *q))
            .collect();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(err("CDF line"))?
            .label(*name)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    if lines.is_empty() {
        root.draw_text(
            "no backend measured in this cell",
            &("sans-serif", 16).into_text_style(&root),
            (250, 250),
        )
        .map_err(err("note"))?;
    } else {
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(err("legend"))?;
    }
    root.present().map_err(err("file"))?;
    Ok(())
}

/// The backends of `cells`, in the order they first appear.
fn backends_in_order<'a>(cells: &[&'a ThroughputCell]) -> Vec<&'a str> {
    let mut backends: Vec<&str> = Vec::new();
    for c in cells {
        if !backends.contains(&c.backend.as_str()) {
            backends.push(&c.backend);
        }
    }
    backends
}

/// The bar groups of `cells`: (scenario, flows), sorted.
fn bar_groups(cells: &[&ThroughputCell]) -> Vec<(Scenario, usize)> {
    let mut groups: Vec<(Scenario, usize)> = cells.iter().map(|c| (c.scenario, c.flows)).collect();
    groups.sort();
    groups.dedup();
    groups
}

/// The x-axis label at `x`: a group's name under the middle of its bars, nothing elsewhere.
fn group_label_at(groups: &[(Scenario, usize)], x: f64) -> String {
    let i = x.floor() as usize;
    match groups.get(i) {
        Some(&(sc, fl)) if (x - x.floor() - 0.5).abs() < 0.01 => group_name(sc, fl),
        _ => String::new(),
    }
}

/// A bar group's x-axis label: "c<->c, 1 flow", "c<->ext, 4 flows".
fn group_name(sc: Scenario, flows: usize) -> String {
    let s = match sc {
        Scenario::ContainerContainer => "c<->c",
        Scenario::ContainerExternal => "c<->ext",
    };
    format!("{s}, {flows} flow{}", if flows == 1 { "" } else { "s" })
}

fn throughput_bars(r: &Results, payload: usize, path: &Path) -> Result<()> {
    let big = payload >= 1000;
    let value = |f: &super::report::ThroughputFigures| if big { f.gbps } else { f.pps / 1e6 };
    let cells: Vec<_> = r
        .throughput
        .iter()
        .filter(|c| c.payload == payload)
        .collect();
    let groups = bar_groups(&cells);
    let backends = backends_in_order(&cells);
    let y_max = cells
        .iter()
        .filter_map(|c| c.figures.as_ref().map(value))
        .fold(0.0f64, f64::max)
        .max(1e-3)
        * 1.15;
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(err("background"))?;
    let unit = if big { "Gbit/s (UDP payload)" } else { "Mpps" };
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Throughput, {payload} B UDP, {unit}"),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..groups.len().max(1) as f64, 0f64..y_max)
        .map_err(err("axes"))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(groups.len().max(1) * 2 + 1)
        .x_label_formatter(&|x| group_label_at(&groups, *x))
        .y_desc(unit)
        .draw()
        .map_err(err("mesh"))?;
    let width = 0.8 / backends.len().max(1) as f64;
    for (bi, b) in backends.iter().enumerate() {
        let color = color_of(r, b);
        let measured = cells.iter().any(|c| c.backend == *b && c.figures.is_some());
        let label = if measured {
            b.to_string()
        } else {
            format!("{b} (not measured)")
        };
        let bars: Vec<Rectangle<(f64, f64)>> = groups
            .iter()
            .enumerate()
            .filter_map(|(gi, &(sc, fl))| {
                let c = cells
                    .iter()
                    .find(|c| c.backend == *b && c.scenario == sc && c.flows == fl)?;
                let v = c.figures.as_ref().map(value)?;
                let x0 = gi as f64 + 0.1 + bi as f64 * width;
                Some(Rectangle::new(
                    [(x0, 0.0), (x0 + width * 0.95, v)],
                    color.filled(),
                ))
            })
            .collect();
        chart
            .draw_series(bars)
            .map_err(err("bars"))?
            .label(label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(err("legend"))?;
    root.present().map_err(err("file"))?;
    Ok(())
}
