//! The scenario × mode table: markdown for the README and target/conformance/, JSON for scripts.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use mvdp_switch::Mode;

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
pub const MODES: [Mode; 4] = [Mode::Bridge, Mode::Private, Mode::Vepa, Mode::Passthru];

/// A cell where mvdp differs from the kernel without meaning to, until it is fixed: mvdp's cell is
/// pinned (the conformance test fails when mvdp stops doing exactly this, so the entry goes once fixed).
#[derive(Debug, Clone, Copy)]
pub struct KnownDifference {
    pub mode: Mode,
    /// Scenario id.
    pub id: &'static str,
    /// Who receives the frame under mvdp (empty: nobody).
    pub mvdp: &'static [Endpoint],
    pub reason: &'static str,
}

/// mvdp's known differences (none is deliberate: see [`Row::deliberate`] for those). Empty since
/// `set_port_up(false)` takes a down port's MAC out of the demux, as the kernel unhashes it.
pub const KNOWN_DIFFERENCES: &[KnownDifference] = &[];

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
    pub mode: Mode,
    pub kernel: Cell,
    pub mvdp: Cell,
    /// Both ran and agree (`None` while one is pending).
    pub matches: Option<bool>,
    /// A listed [`KnownDifference`] for this cell: why.
    pub known: Option<String>,
}

/// The whole matrix.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Table {
    pub rows: Vec<Row>,
}

fn cell_of(results: &[ModeResult], mode: Mode, id: &str) -> Cell {
    results
        .iter()
        .find(|r| r.mode == mode)
        .and_then(|r| r.cells.get(id).cloned())
        .unwrap_or(Cell::Pending)
}

impl Table {
    /// Builds the table from the kernel's results and mvdp's (empty while pending), with mvdp's
    /// [`KNOWN_DIFFERENCES`].
    pub fn new(kernel: &[ModeResult], mvdp: &[ModeResult]) -> Table {
        Table::with_known(kernel, mvdp, KNOWN_DIFFERENCES)
    }

    /// [`Table::new`] with another list of known differences.
    pub fn with_known(
        kernel: &[ModeResult],
        mvdp: &[ModeResult],
        known: &[KnownDifference],
    ) -> Table {
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
                            known: known
                                .iter()
                                .find(|d| d.mode == mode && d.id == s.id)
                                .map(|d| d.reason.to_string()),
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

    /// Cells where both subjects ran and disagree outside the deliberate and the known differences,
    /// as "mode scenario: kernel X, mvdp Y". What the mvdp conformance test asserts is empty.
    pub fn mismatches(&self) -> Vec<String> {
        let mut out = Vec::new();
        for r in self.rows.iter().filter(|r| r.deliberate.is_none()) {
            for c in r.modes.iter().filter(|c| c.known.is_none()) {
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

    /// Known differences that no longer hold as listed: mvdp now matches the kernel there, or does
    /// something else again. The conformance test asserts this is empty, so the list stays true.
    pub fn stale_known(&self, known: &[KnownDifference]) -> Vec<String> {
        let mut out = Vec::new();
        for d in known {
            let Some(c) = self
                .rows
                .iter()
                .find(|r| r.id == d.id)
                .and_then(|r| r.modes.iter().find(|c| c.mode == d.mode))
            else {
                out.push(format!("{} {}: no such cell", d.mode, d.id));
                continue;
            };
            if c.matches.is_none() {
                continue;
            }
            let listed = Cell::Received(d.mvdp.iter().copied().collect());
            if c.matches == Some(true) || c.mvdp != listed {
                out.push(format!(
                    "{} {}: listed as mvdp {}, now kernel {}, mvdp {}",
                    d.mode,
                    d.id,
                    listed.short(),
                    c.kernel.short(),
                    c.mvdp.short()
                ));
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
                    Some(false) if c.known.is_some() => {
                        format!("known difference: {}", c.mvdp.short())
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

    /// The known differences under the table: one line per row, with its modes and the reason.
    fn known_notes(&self) -> String {
        let mut out = String::new();
        for r in &self.rows {
            let mut reasons: Vec<(&str, Vec<String>)> = Vec::new();
            for c in &r.modes {
                if let (Some(why), Some(false)) = (&c.known, c.matches) {
                    match reasons.iter_mut().find(|(w, _)| w == why) {
                        Some((_, modes)) => modes.push(c.mode.to_string()),
                        None => reasons.push((why, vec![c.mode.to_string()])),
                    }
                }
            }
            for (why, modes) in reasons {
                out.push_str(&format!("- *{}* ({}): {why}.\n", r.title, modes.join(", ")));
            }
        }
        if out.is_empty() {
            out.push_str("None: every cell outside the deliberate differences matches.\n");
        }
        out
    }

    /// The README section between the conformance markers (markers excluded).
    pub fn readme_section(&self) -> String {
        format!(
            "\n{}\n\n{}\nKnown differences (cells marked \"known difference\"; the test pins each one and \
             fails once it no longer holds):\n\n{}",
            "Generated by `tests/conformance.rs` (`MVDP_UPDATE_README=1 cargo test --test conformance` \
             rewrites it; the test fails while it is stale). Each row is one raw frame (ethertype \
             0x88b5) sent from P1 or from the external host (\"wire\"), in a lab whose containers are \
             the ports of one network (2 ports; passthru 1). A cell lists who received it: `p1`/`p2` \
             the containers' stacks, `host` the host stack on the parent, `ext` the external host, \
             `wire` = it left the parent towards the wire switch. The wire switch has learned every \
             MAC; \"wire reflects\" = hairpin on its port to the parent (802.1Qbg). The kernel \
             column is kernel macvlan children of the parent; the mvdp column is the same lab with \
             `mvdp daemon` in the host namespace and one `mvdp port add` per container (same MACs \
             and IPs), \"same\" when it received exactly what the kernel did. A port going down or \
             changing its MAC is done inside the container (`ip link set eth0 down|address`) for \
             both. VLAN rows: this kernel has no 8021Q module, so kernel VLAN networks cannot be \
             built. Rows marked \"deliberate difference\" show what the kernel does where mvdp \
             differs on purpose (see below).",
            self.markdown(),
            self.known_notes()
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
            mode: Mode::Bridge,
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
    fn known_differences_are_excluded_and_pinned() {
        use super::super::run::ModeResult;
        let all = scenarios();
        let result = |subject: &str, f: &dyn Fn(&str) -> Cell| ModeResult {
            subject: subject.into(),
            mode: Mode::Vepa,
            ports: 2,
            cells: all.iter().map(|s| (s.id.clone(), f(&s.id))).collect(),
        };
        let kernel = result("kernel", &|_| Cell::Received([Endpoint::Host].into()));
        let mvdp = result("mvdp", &|id: &str| {
            if id == "port-down/ext-last" {
                Cell::Received(BTreeSet::new())
            } else {
                Cell::Received([Endpoint::Host].into())
            }
        });
        let known = [KnownDifference {
            mode: Mode::Vepa,
            id: "port-down/ext-last",
            mvdp: &[],
            reason: "because",
        }];
        let t = Table::with_known(std::slice::from_ref(&kernel), &[mvdp], &known);
        assert!(t.mismatches().is_empty());
        assert!(t.stale_known(&known).is_empty());
        assert!(t.markdown().contains("known difference: nobody"));
        assert!(t.readme_section().contains("(vepa): because."));
        // Fixed: the entry is stale and the README says there are none.
        let fixed = Table::with_known(
            std::slice::from_ref(&kernel),
            std::slice::from_ref(&kernel),
            &known,
        );
        assert_eq!(fixed.stale_known(&known).len(), 1);
        assert!(fixed.readme_section().contains("None: every cell"));
        // Without the entry it is a plain mismatch.
        let mvdp2 = result("mvdp", &|id: &str| {
            Cell::Received(if id == "port-down/ext-last" {
                BTreeSet::new()
            } else {
                [Endpoint::Host].into()
            })
        });
        assert_eq!(
            Table::with_known(&[kernel], &[mvdp2], &[]).mismatches(),
            ["vepa port-down/ext-last: kernel host, mvdp nobody"]
        );
    }

    #[test]
    fn pending_mvdp_column() {
        let t = Table::new(&[], &[]);
        assert_eq!(t.rows.len(), scenarios().len());
        assert!(t.rows[0].modes.iter().all(|c| c.matches.is_none()));
        assert!(t.markdown().contains("| pending |"));
    }
}
