//! The scenario × mode table: markdown for the README and target/conformance/, JSON for scripts.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use mvdp_control::MacvlanMode;

use super::run::ModeResult;
use super::scenario::{scenarios, Endpoint};

/// What one subject did in one scenario.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Cell {
    /// The endpoints that received the frame (empty: nobody).
    Received(BTreeSet<Endpoint>),
    /// The scenario cannot be expressed on this subject or with this many ports; why.
    NotApplicable(String),
    /// The subject has not been run (mvdp until its backend is wired).
    Pending,
}

impl Cell {
    /// "p2, wire", "nobody", "n/a", "pending".
    pub fn short(&self) -> String {
        match self {
            Cell::Received(s) if s.is_empty() => "nobody".into(),
            Cell::Received(s) => s
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            Cell::NotApplicable(_) => "n/a".into(),
            Cell::Pending => "pending".into(),
        }
    }
}

/// The modes in table order.
pub const MODES: [MacvlanMode; 4] = [
    MacvlanMode::Bridge,
    MacvlanMode::Private,
    MacvlanMode::Vepa,
    MacvlanMode::Passthru,
];

/// One row: a scenario and, per mode, the kernel's cell and mvdp's.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    pub id: String,
    pub title: String,
    /// A deliberate difference of mvdp's: why (a mismatch here is expected).
    pub deliberate: Option<String>,
    pub modes: Vec<ModeCells>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ModeCells {
    pub mode: MacvlanMode,
    pub kernel: Cell,
    pub mvdp: Cell,
    /// Both ran and agree (`None` while one is pending).
    pub matches: Option<bool>,
}

/// The whole matrix.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Table {
    pub rows: Vec<Row>,
}

fn cell_of(results: &[ModeResult], mode: MacvlanMode, id: &str) -> Cell {
    results
        .iter()
        .find(|r| r.mode == mode)
        .and_then(|r| r.cells.get(id).cloned())
        .unwrap_or(Cell::Pending)
}

impl Table {
    /// Builds the table from the kernel's results and mvdp's (empty while pending).
    pub fn new(kernel: &[ModeResult], mvdp: &[ModeResult]) -> Table {
        let rows = scenarios()
            .into_iter()
            .map(|s| Row {
                modes: MODES
                    .iter()
                    .map(|&mode| {
                        let k = cell_of(kernel, mode, &s.id);
                        let m = cell_of(mvdp, mode, &s.id);
                        let matches = match (&k, &m) {
                            (Cell::Pending, _) | (_, Cell::Pending) => None,
                            (a, b) => Some(a == b),
                        };
                        ModeCells {
                            mode,
                            kernel: k,
                            mvdp: m,
                            matches,
                        }
                    })
                    .collect(),
                id: s.id,
                title: s.title,
                deliberate: s.deliberate.map(str::to_string),
            })
            .collect();
        Table { rows }
    }

    /// Cells where both subjects ran and disagree outside the deliberate differences, as
    /// "mode scenario: kernel X, mvdp Y". What the mvdp conformance test asserts is empty.
    pub fn mismatches(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in self.rows.iter().filter(|r| r.deliberate.is_none()) {
            for c in &r.modes {
                if c.matches == Some(false) {
                    out.push(format!(
                        "{} {}: kernel {}, mvdp {}",
                        c.mode,
                        r.id,
                        c.kernel.short(),
                        c.mvdp.short()
                    ));
                }
            }
        }
        out
    }

    /// The table in markdown: per mode a kernel column and an mvdp column ("same" when it matches).
    pub fn markdown(&self) -> String {
        let mut out = String::from("| scenario |");
        for m in MODES {
            out.push_str(&format!(" {m}: kernel | mvdp |"));
        }
        out.push_str("\n|---|");
        out.push_str(&"---|---|".repeat(MODES.len()));
        out.push('\n');
        for r in &self.rows {
            match r.deliberate {
                Some(_) => out.push_str(&format!("| {} (deliberate difference) |", r.title)),
                None => out.push_str(&format!("| {} |", r.title)),
            }
            for c in &r.modes {
                let mvdp = match c.matches {
                    Some(true) => "same".to_string(),
                    Some(false) if r.deliberate.is_some() => {
                        format!("differs by design: {}", c.mvdp.short())
                    }
                    Some(false) => format!("**differs: {}**", c.mvdp.short()),
                    None => c.mvdp.short(),
                };
                out.push_str(&format!(" {} | {} |", c.kernel.short(), mvdp));
            }
            out.push('\n');
        }
        out
    }

    /// The README section between the conformance markers (markers excluded).
    pub fn readme_section(&self) -> String {
        format!(
            "\n{}\n{}\n",
            "Generated by `tests/conformance.rs` (`MVDP_UPDATE_README=1 cargo test --test conformance` \
             rewrites it; the test fails while it is stale). Each row is one raw frame (ethertype \
             0x88b5) sent from P1 or from the external host (\"wire\"), in a lab whose containers are \
             the ports of one network (2 ports; passthru 1). A cell lists who received it: `p1`/`p2` \
             the containers' stacks, `host` the host stack on the parent, `ext` the external host, \
             `wire` = it left the parent towards the wire switch. The wire switch has learned every \
             MAC; \"wire reflects\" = hairpin on its port to the parent (802.1Qbg). The mvdp column \
             is pending until the mvdp backend is wired into the suite. VLAN rows: this kernel has no \
             8021Q module, so kernel VLAN networks cannot be built. Rows marked \"deliberate \
             difference\" show what the kernel does where mvdp differs on purpose (see below).",
            self.markdown()
        )
    }
}

pub const README_BEGIN: &str = "<!-- conformance:begin -->";
pub const README_END: &str = "<!-- conformance:end -->";

/// `readme` with the text between the conformance markers replaced by `section`.
pub fn replace_readme_section(readme: &str, section: &str) -> Result<String> {
    let (Some(b), Some(e)) = (readme.find(README_BEGIN), readme.find(README_END)) else {
        bail!("README has no {README_BEGIN} ... {README_END} section");
    };
    if e < b {
        bail!("README's conformance markers are out of order");
    }
    let start = b + README_BEGIN.len();
    Ok(format!("{}{}{}", &readme[..start], section, &readme[e..]))
}

/// The text between the conformance markers.
pub fn readme_section(readme: &str) -> Option<&str> {
    let b = readme.find(README_BEGIN)? + README_BEGIN.len();
    let e = readme.find(README_END)?;
    readme.get(b..e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn section_replacement() {
        let r = format!("a\n{README_BEGIN}\nold\n{README_END}\nb\n");
        let new = replace_readme_section(&r, "\nnew\n").unwrap();
        assert_eq!(new, format!("a\n{README_BEGIN}\nnew\n{README_END}\nb\n"));
        assert_eq!(readme_section(&new), Some("\nnew\n"));
        assert!(replace_readme_section("no markers", "x").is_err());
    }

    #[test]
    fn mismatches_skip_pending_and_deliberate_rows() {
        use super::super::run::ModeResult;
        let all = scenarios();
        let result = |subject: &str, f: &dyn Fn(&str) -> Cell| ModeResult {
            subject: subject.into(),
            mode: MacvlanMode::Bridge,
            ports: 2,
            cells: all.iter().map(|s| (s.id.clone(), f(&s.id))).collect(),
        };
        let nobody = |_: &str| Cell::Received(BTreeSet::new());
        let kernel = result("kernel", &nobody);
        assert!(Table::new(std::slice::from_ref(&kernel), &[])
            .mismatches()
            .is_empty());
        let mvdp = result("mvdp", &|id: &str| {
            if id == "hairpin-off/p1-p2" || id == "hairpin-off/p1-spoofed" {
                Cell::Received([Endpoint::Host].into())
            } else {
                Cell::Received(BTreeSet::new())
            }
        });
        let t = Table::new(&[kernel], &[mvdp]);
        assert_eq!(
            t.mismatches(),
            ["bridge hairpin-off/p1-p2: kernel nobody, mvdp host"]
        );
        assert!(t.markdown().contains("differs by design: host"));
        assert!(t.markdown().contains("**differs: host**"));
    }

    #[test]
    fn pending_mvdp_column() {
        let t = Table::new(&[], &[]);
        assert_eq!(t.rows.len(), scenarios().len());
        assert!(t.rows[0].modes.iter().all(|c| c.matches.is_none()));
        assert!(t.markdown().contains("| pending |"));
    }
}
