//! The few chart shapes the report needs, as SVG text: columns (a histogram), rows (labelled
//! horizontal bars) and lines (p50/p95 per period). Every label is escaped.

use std::fmt::Write as _;

const WIDTH: f64 = 440.0;
const HEIGHT: f64 = 220.0;

/// One bar.
pub struct Bar {
    label: String,
    value: u64,
    class: &'static str,
}

impl Bar {
    pub fn new(label: impl Into<String>, value: u64) -> Self {
        Self { label: label.into(), value, class: "bar" }
    }
    pub fn bad(mut self) -> Self {
        self.class = "bar bad";
        self
    }
    pub fn neutral(mut self) -> Self {
        self.class = "bar neutral";
        self
    }
}

/// Text made safe for HTML and SVG.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A chart in its figure.
pub fn figure(name: &str, caption: &str, svg: &str) -> String {
    format!("<figure class=\"chart\" data-chart=\"{}\"><figcaption>{}</figcaption>\n{svg}</figure>\n", esc(name), esc(caption))
}

fn open() -> String {
    format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\">")
}

/// Vertical bars, labels under them, values over them.
pub fn columns(bars: &[Bar]) -> String {
    let mut s = open();
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0).max(1) as f64;
    let (top, bottom, left) = (16.0, 30.0, 10.0);
    let slot = (WIDTH - 2.0 * left) / bars.len().max(1) as f64;
    for (i, b) in bars.iter().enumerate() {
        let h = (HEIGHT - top - bottom) * b.value as f64 / max;
        let x = left + slot * i as f64 + slot * 0.15;
        let y = HEIGHT - bottom - h;
        let _ = write!(
            s,
            "<rect class=\"{}\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{h:.1}\"><title>{}: {}</title></rect>",
            b.class,
            slot * 0.7,
            esc(&b.label),
            b.value
        );
        let cx = x + slot * 0.35;
        let _ = write!(s, "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>", y - 3.0, b.value);
        let _ = write!(s, "<text x=\"{cx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>", HEIGHT - bottom + 14.0, esc(&b.label));
    }
    s.push_str("</svg>\n");
    s
}

/// Horizontal bars, labels on the left, values on the right.
pub fn rows(bars: &[Bar]) -> String {
    let mut s = open();
    let max = bars.iter().map(|b| b.value).max().unwrap_or(0).max(1) as f64;
    let (label_w, right) = (120.0, 40.0);
    let slot = (HEIGHT - 10.0) / bars.len().max(1) as f64;
    for (i, b) in bars.iter().enumerate() {
        let y = 5.0 + slot * i as f64;
        let w = (WIDTH - label_w - right) * b.value as f64 / max;
        let _ = write!(s, "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>", label_w - 6.0, y + slot * 0.6, esc(&b.label));
        let _ = write!(
            s,
            "<rect class=\"{}\" x=\"{label_w}\" y=\"{:.1}\" width=\"{w:.1}\" height=\"{:.1}\"><title>{}: {}</title></rect>",
            b.class,
            y + slot * 0.15,
            slot * 0.7,
            esc(&b.label),
            b.value
        );
        let _ = write!(s, "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>", label_w + w + 4.0, y + slot * 0.6, b.value);
    }
    s.push_str("</svg>\n");
    s
}

/// Two lines (p50, p95) over labelled periods, with a dot at each point.
pub fn lines(points: &[(String, u64, u64)]) -> String {
    let mut s = open();
    let max = points.iter().map(|p| p.2.max(p.1)).max().unwrap_or(0).max(1) as f64;
    let (top, bottom, left, right) = (16.0, 30.0, 50.0, 20.0);
    let step = if points.len() > 1 { (WIDTH - left - right) / (points.len() - 1) as f64 } else { 0.0 };
    let xy = |i: usize, v: u64| {
        (
            left + step * i as f64 + if points.len() == 1 { (WIDTH - left - right) / 2.0 } else { 0.0 },
            HEIGHT - bottom - (HEIGHT - top - bottom) * v as f64 / max,
        )
    };
    let _ = write!(s, "<text x=\"4\" y=\"{top}\">{}</text><text x=\"4\" y=\"{:.1}\">0</text>", max as u64, HEIGHT - bottom);
    for (name, pick) in [("p50", 1_usize), ("p95", 2)] {
        let coords: Vec<(f64, f64)> = points.iter().enumerate().map(|(i, p)| xy(i, if pick == 1 { p.1 } else { p.2 })).collect();
        let path: Vec<String> = coords.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = write!(s, "<polyline class=\"series {name}\" fill=\"none\" stroke-width=\"2\" points=\"{}\"><title>{name}</title></polyline>", path.join(" "));
        for (x, y) in coords {
            let _ = write!(s, "<circle class=\"series {name}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\"/>");
        }
    }
    for (i, p) in points.iter().enumerate() {
        let (x, _) = xy(i, 0);
        let _ = write!(s, "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>", HEIGHT - bottom + 14.0, esc(&p.0));
    }
    let _ = write!(s, "<text x=\"{:.1}\" y=\"12\">p50 (blue), p95 (red)</text>", WIDTH - 150.0);
    s.push_str("</svg>\n");
    s
}
