//! Conformance: every scenario of `mvdp_lab::conformance` on kernel macvlan in each mode, checked cell by
//! cell against a model of drivers/net/macvlan.c (Linux 6.18; the rules are spelled out in
//! dataplane/README.md "Semantics"), then written to target/conformance/kernel.{md,json}; the same
//! scenarios on mvdp (daemon + ports in the same lab shape) must give the kernel's cells except for the
//! deliberate differences and the listed known ones (target/conformance/mvdp.{md,json}); the README's
//! conformance section is generated from both.

mod common;

use std::collections::BTreeSet;
use std::sync::OnceLock;

use common::*;
use mvdp_lab::conformance::report::{
    readme_section, replace_readme_section, KNOWN_DIFFERENCES, MODES,
};
use mvdp_lab::conformance::run::ports_for;
use mvdp_lab::conformance::{
    run_mode, scenarios, Cell, Dst, Endpoint, KernelMacvlan, ModeResult, Mvdp, Phase, Scenario,
    Sender, Subject, Table,
};
use mvdp_switch::Mode;

// ---- the model ------------------------------------------------------------------------------------------

/// A network's state as the model sees it. MACs are symbolic: ports by number, the rest by role.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mac {
    Port(u32),
    OldP1,
    Host,
    Ext,
    Unknown,
    Group,
}

struct Net {
    mode: Mode,
    ports: u32,
    hairpin: bool,
    down: Option<u32>,
}

impl Net {
    fn up(&self, n: u32) -> bool {
        self.down != Some(n)
    }
    /// The up port owning `mac` (the kernel's hash lookup: down ports are unhashed by macvlan_stop).
    fn port_with(&self, mac: Mac) -> Option<u32> {
        let n = match mac {
            Mac::Port(n) => n,
            // A passthru port carries the parent's MAC.
            Mac::Host if self.mode == Mode::Passthru => 1,
            _ => return None,
        };
        (n <= self.ports && self.up(n)).then_some(n)
    }
    fn up_ports(&self) -> impl Iterator<Item = u32> + '_ {
        (1..=self.ports).filter(|n| self.up(*n))
    }

    /// macvlan_queue_xmit: port `from` sends to `dst`.
    fn port_sends(&self, from: u32, dst: Mac) -> BTreeSet<Endpoint> {
        let mut got = BTreeSet::new();
        if self.mode == Mode::Bridge {
            if dst == Mac::Group {
                // Straight to the other bridge ports, then out to the wire.
                got.extend(self.up_ports().filter(|n| *n != from).map(Endpoint::Port));
            } else if let Some(n) = self.port_with(dst) {
                // dev_forward_skb into the parent's rx path: delivered locally, never on the wire.
                got.insert(Endpoint::Port(n));
                return got;
            }
        }
        got.insert(Endpoint::Wire);
        got.extend(self.wire_switch(Mac::Port(from), dst));
        got
    }

    /// The wire switch (a learning Linux bridge that has seen every MAC but the unknown and the new
    /// one) given a frame from the parent.
    fn wire_switch(&self, src: Mac, dst: Mac) -> BTreeSet<Endpoint> {
        let mut got = BTreeSet::new();
        let (to_ext, back) = match dst {
            Mac::Ext => (true, false),
            Mac::Unknown | Mac::Group => (true, self.hairpin), // flooded
            _ => (false, self.hairpin),                        // learned behind the parent's port
        };
        if to_ext {
            got.insert(Endpoint::Ext);
        }
        if back {
            got.extend(self.wire_delivers(src, dst));
        }
        got
    }

    /// macvlan_handle_frame: a frame arriving on the parent.
    fn wire_delivers(&self, src: Mac, dst: Mac) -> BTreeSet<Endpoint> {
        let mut got = BTreeSet::new();
        if dst == Mac::Group {
            match self.port_with(src).map(|_| self.mode) {
                // Reflected from a private/passthru port: back to it alone, consumed (no host copy).
                Some(Mode::Private | Mode::Passthru) => {
                    got.insert(Endpoint::Port(self.port_with(src).unwrap()));
                    return got;
                }
                // From a VEPA port: VEPA and bridge ports but the sender.
                Some(Mode::Vepa) => {
                    let s = self.port_with(src);
                    got.extend(
                        self.up_ports()
                            .filter(|n| Some(*n) != s)
                            .map(Endpoint::Port),
                    );
                }
                // From a bridge port: VEPA ports only (the bridge ports saw it on the way out).
                Some(_) => {}
                // From outside: every port.
                None => got.extend(self.up_ports().map(Endpoint::Port)),
            }
            got.insert(Endpoint::Host);
            return got;
        }
        if self.mode == Mode::Passthru {
            // Every unicast goes to the passthru port; dropped when it is down.
            if self.up(1) {
                got.insert(Endpoint::Port(1));
            }
            return got;
        }
        match self.port_with(dst) {
            Some(n) => got.insert(Endpoint::Port(n)),
            None => got.insert(Endpoint::Host),
        };
        got
    }
}

fn expected(mode: Mode, s: &Scenario) -> Cell {
    let ports = ports_for(mode);
    if let Some(why) = s.not_applicable(ports) {
        return Cell::NotApplicable(why);
    }
    let net = Net {
        mode,
        ports,
        hairpin: s.phase != Phase::HairpinOff,
        down: (s.phase == Phase::PortDown).then_some(ports),
    };
    let dst = match s.dst.resolve(ports) {
        Dst::Port(n) => Mac::Port(n),
        Dst::Unknown => Mac::Unknown,
        Dst::Ext => Mac::Ext,
        Dst::Host => Mac::Host,
        Dst::Broadcast | Dst::Multicast => Mac::Group,
        Dst::OldPort1 => Mac::OldP1,
    };
    // After P1's MAC change the old MAC is nobody's (`OldP1` matches no port); in passthru the parent
    // changed with it, and passthru takes every unicast anyway.
    Cell::Received(match s.from {
        Sender::Port(n) => net.port_sends(n, dst),
        Sender::Ext => net.wire_delivers(Mac::Ext, dst),
    })
}

// ---- running it once per test binary ------------------------------------------------------------------------

/// Every mode on `subject`, one lab per mode, all at once: each waits mostly on settle timers.
fn run_all_modes(subject: &dyn Subject, tag: &str) -> Vec<ModeResult> {
    let prefixes: Vec<String> = MODES.iter().map(|_| unique_prefix(tag)).collect();
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = MODES
            .iter()
            .zip(&prefixes)
            .map(|(&m, p)| s.spawn(move || run_mode(subject, p, m)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("mode runner panicked"))
            .collect::<Result<Vec<_>, _>>()
    });
    for p in &prefixes {
        assert!(
            eventually(2, || netns_with_prefix(p).is_empty()),
            "conformance lab {p} left behind"
        );
    }
    results.unwrap_or_else(|e| panic!("{} conformance run: {e:#}", subject.name()))
}

fn kernel_results() -> Option<&'static Vec<ModeResult>> {
    static RESULTS: OnceLock<Option<Vec<ModeResult>>> = OnceLock::new();
    RESULTS
        .get_or_init(|| is_root("conformance").then(|| run_all_modes(&KernelMacvlan, "conf")))
        .as_ref()
}

fn mvdp_results() -> Option<&'static Vec<ModeResult>> {
    static RESULTS: OnceLock<Option<Vec<ModeResult>>> = OnceLock::new();
    RESULTS
        .get_or_init(|| {
            let mvdp = Mvdp {
                bin: common::BIN.into(),
            };
            is_root("conformance_mvdp").then(|| run_all_modes(&mvdp, "confm"))
        })
        .as_ref()
}

#[test]
fn mvdp_delivers_what_kernel_macvlan_delivers() {
    let (Some(kernel), Some(mvdp)) = (kernel_results(), mvdp_results()) else {
        return;
    };
    for r in mvdp {
        assert_eq!(r.subject, "mvdp");
        assert_eq!(r.cells.len(), scenarios().len(), "{}", r.mode);
    }
    let by_mode = |m: Mode| mvdp.iter().find(|r| r.mode == m).unwrap();
    // The deliberate differences, side by side with the kernel (which forwards both, checked above):
    // a foreign source MAC is dropped except in passthru, an injected tag always.
    for r in mvdp {
        let spoofed = if r.mode == Mode::Passthru {
            set(&["wire", "ext"])
        } else {
            set(&[])
        };
        assert_eq!(
            receivers(r, "hairpin-off/p1-spoofed"),
            spoofed,
            "{}",
            r.mode
        );
        assert_eq!(
            receivers(r, "hairpin-off/p1-tagged"),
            set(&[]),
            "{}",
            r.mode
        );
    }
    // A few cells that need the daemon to follow the container's end.
    assert_eq!(
        receivers(by_mode(Mode::Bridge), "mac-change/ext-new"),
        set(&["p1"]),
        "the port follows its container's new MAC"
    );
    assert_eq!(
        receivers(by_mode(Mode::Bridge), "port-down/ext-bcast"),
        set(&["p1", "host"]),
        "a down port gets no flood copy"
    );

    let table = Table::new(kernel, mvdp);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/conformance");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("mvdp.md"), table.markdown()).unwrap();
    std::fs::write(
        dir.join("mvdp.json"),
        serde_json::to_string_pretty(&table).unwrap(),
    )
    .unwrap();
    let m = table.mismatches();
    assert!(
        m.is_empty(),
        "mvdp differs from the kernel:\n{}",
        m.join("\n")
    );
    let stale = table.stale_known(KNOWN_DIFFERENCES);
    assert!(
        stale.is_empty(),
        "known differences that no longer hold (update KNOWN_DIFFERENCES):\n{}",
        stale.join("\n")
    );
}

fn receivers(r: &ModeResult, id: &str) -> BTreeSet<String> {
    match &r.cells[id] {
        Cell::Received(s) => s.iter().map(|e| e.to_string()).collect(),
        other => panic!("{id} in {}: {other:?}", r.mode),
    }
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn kernel_macvlan_matches_the_documented_kernel_facts() {
    let Some(results) = kernel_results() else {
        return;
    };
    let by_mode = |m: Mode| results.iter().find(|r| r.mode == m).unwrap();
    // A few facts spelled out, then every cell against the model.
    let bridge = by_mode(Mode::Bridge);
    let private = by_mode(Mode::Private);
    let vepa = by_mode(Mode::Vepa);
    let passthru = by_mode(Mode::Passthru);
    assert_eq!(
        receivers(bridge, "hairpin-off/p1-p2"),
        set(&["p2"]),
        "bridge: sibling unicast stays local"
    );
    assert_eq!(
        receivers(private, "hairpin-off/p1-p2"),
        set(&["wire"]),
        "private: no local delivery"
    );
    assert_eq!(
        receivers(private, "hairpin-on/p1-p2"),
        set(&["p2", "wire"]),
        "private: a reflected unicast IS delivered"
    );
    assert_eq!(
        receivers(vepa, "hairpin-on/p1-p2"),
        set(&["p2", "wire"]),
        "vepa: sibling via the wire's hairpin"
    );
    assert_eq!(
        receivers(private, "hairpin-on/p1-bcast"),
        set(&["p1", "wire", "ext"]),
        "private: reflected broadcast back to the sender only, no host copy"
    );
    assert_eq!(
        receivers(bridge, "hairpin-off/p1-bcast"),
        set(&["p2", "wire", "ext"]),
        "bridge: broadcast to siblings and wire, no host copy"
    );
    assert_eq!(
        receivers(vepa, "hairpin-on/p1-bcast"),
        set(&["p2", "host", "wire", "ext"])
    );
    assert_eq!(
        receivers(bridge, "port-down/ext-last"),
        set(&["host"]),
        "a down port's MAC is unknown"
    );
    assert_eq!(
        receivers(passthru, "port-down/ext-last"),
        set(&[]),
        "a down passthru port drops all unicast"
    );
    assert_eq!(
        receivers(passthru, "hairpin-off/ext-unknown"),
        set(&["p1"]),
        "passthru takes every unicast"
    );
    assert_eq!(
        receivers(bridge, "hairpin-off/p1-host"),
        set(&["wire"]),
        "bridge: the parent's MAC is on the wire side"
    );

    // The kernel side of mvdp's deliberate differences: it forwards both.
    for r in results {
        for id in ["hairpin-off/p1-spoofed", "hairpin-off/p1-tagged"] {
            assert_eq!(receivers(r, id), set(&["wire", "ext"]), "{} {id}", r.mode);
        }
    }

    let mut wrong = Vec::new();
    for r in results {
        assert_eq!(r.subject, "kernel");
        for s in scenarios() {
            let want = expected(r.mode, &s);
            let got = &r.cells[&s.id];
            if *got != want {
                wrong.push(format!(
                    "{} {}: kernel {} model {}",
                    r.mode,
                    s.id,
                    got.short(),
                    want.short()
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "kernel and model disagree:\n{}",
        wrong.join("\n")
    );

    let table = Table::new(results, &[]);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/conformance");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("kernel.md"), table.markdown()).unwrap();
    std::fs::write(
        dir.join("kernel.json"),
        serde_json::to_string_pretty(&table).unwrap(),
    )
    .unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("kernel.json")).unwrap()).unwrap();
    assert_eq!(json["rows"][0]["modes"][0]["mvdp"], "pending");
}

#[test]
fn readme_conformance_table_is_generated_from_the_suite() {
    let (Some(kernel), Some(mvdp)) = (kernel_results(), mvdp_results()) else {
        return;
    };
    let section = Table::new(kernel, mvdp).readme_section();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    if std::env::var_os("MVDP_UPDATE_README").is_some_and(|v| v == "1") {
        let new = replace_readme_section(&readme, &section).unwrap();
        std::fs::write(&path, new).unwrap();
    } else {
        let current = readme_section(&readme).unwrap_or("");
        let first_diff = current
            .lines()
            .zip(section.lines())
            .find(|(a, b)| a != b)
            .map(|(a, b)| format!("README: {a}\nsuite:  {b}"))
            .unwrap_or_else(|| "(one is a prefix of the other)".into());
        assert!(
            current == section,
            "README's conformance table is stale: run MVDP_UPDATE_README=1 cargo test --test \
             conformance\nfirst difference:\n{first_diff}"
        );
    }
}
