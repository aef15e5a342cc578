//! Labs left up: their records under `/run/mvdp/labs`, `mvdp lab down` and `mvdp lab ls`.

use std::collections::BTreeMap;

use super::built::{ContainerLink, Lab};
use super::daemon::{stop_lab_daemon, LabDaemon};
use super::description::{LabDescription, LabSummary};
use crate::backend::Backend;
use mvdp_control::error::{Error, Result};
use mvdp_control::names::{parse_lab_netns, validate_prefix, Role};
use mvdp_control::netns::{is_root, NetNs};

impl Lab {
    /// Leaves the lab up (for `mvdp lab up`): its namespaces are no longer removed on drop or Ctrl-C.
    /// Returns its description. Remove it later with [`Lab::destroy_by_name`].
    pub fn keep(self) -> Result<LabDescription> {
        let backend = self.backend;
        self.keep_with(backend, None)
    }

    /// [`Lab::keep`] for a lab whose containers something else attached (the mvdp daemon, built
    /// as [`Backend::None`]): records `backend` and the daemon, which [`Lab::destroy_by_name`]
    /// stops before it removes the namespaces. The containers are described as mvdp ports.
    pub fn keep_with(
        mut self,
        backend: Backend,
        daemon: Option<LabDaemon>,
    ) -> Result<LabDescription> {
        let mut d = self.description();
        d.backend = backend;
        if let Backend::Mvdp(_) = backend {
            for c in &mut d.containers {
                c.link = ContainerLink::Mvdp;
            }
        }
        d.daemon = daemon;
        // `lab down` removes only what such a record names: namespaces that merely look like a
        // lab's (someone's own `docker-host`) are never touched. On failure the lab is dropped.
        write_record(&self.prefix, &d.namespaces, backend, d.daemon.as_ref())?;
        self.created.keep = true;
        Ok(d)
    }

    /// The existing namespaces of lab `prefix` (`{prefix}-<known role>`), sorted.
    pub fn namespaces_of(prefix: &str) -> Result<Vec<String>> {
        validate_prefix(prefix)?;
        Ok(NetNs::list()?
            .into_iter()
            .filter(|n| parse_lab_netns(n).is_some_and(|(p, _)| p == prefix))
            .collect())
    }

    /// Removes lab `prefix` found on the system by name (`mvdp lab down`): only namespaces named
    /// `{prefix}-<wire|ext|host|hostN|cN>`. [`Error::NoSuchLab`] when there is none; nothing else touched.
    /// Returns the names removed.
    pub fn destroy_by_name(prefix: &str) -> Result<Vec<String>> {
        if !is_root() {
            return Err(Error::NotRoot(format!("removing lab {prefix}")));
        }
        let existing = Self::namespaces_of(prefix)?;
        let Some(Record {
            namespaces: recorded,
            daemon,
            ..
        }) = read_record(prefix)?
        else {
            return Err(if existing.is_empty() {
                Error::NoSuchLab(prefix.to_string())
            } else {
                Error::NotOurLab {
                    prefix: prefix.to_string(),
                    namespaces: existing,
                }
            });
        };
        // The daemon first: it lets go of the parent and its ports while they still exist.
        if let Some(d) = &daemon {
            stop_lab_daemon(d);
        }
        let names: Vec<String> = existing
            .into_iter()
            .filter(|n| recorded.contains(n))
            .collect();
        if names.is_empty() {
            // Removed by hand since: forget the stale record.
            remove_record(prefix)?;
            return Err(Error::NoSuchLab(prefix.to_string()));
        }
        let mut removed = Vec::new();
        let mut first_err = None;
        // Containers and hosts before the wire, like Drop.
        let mut ordered = names;
        ordered.sort_by_key(|n| match parse_lab_netns(n).map(|(_, r)| r) {
            Some(Role::Container(_)) => 0,
            Some(Role::Host(_)) => 1,
            Some(Role::Ext) => 2,
            _ => 3,
        });
        for name in ordered {
            match NetNs::delete_by_name(&name) {
                Ok(()) => removed.push(name),
                Err(Error::NetnsNotFound(_)) => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        if first_err.is_none() {
            remove_record(prefix)?;
        }
        first_err.map_or(Ok(removed), Err)
    }

    /// Labs found on the system, grouped by prefix from their namespace names.
    pub fn list() -> Result<Vec<LabSummary>> {
        let mut labs = group_labs(&NetNs::list()?);
        for l in &mut labs {
            // A lab we cannot read the record of is still listed, without its backend.
            l.backend = read_record(&l.name).ok().flatten().and_then(|r| r.backend);
        }
        Ok(labs)
    }
}

/// Where `Lab::keep` records the namespaces of labs left up (tmpfs, like /run/netns: both are
/// gone after a reboot).
pub(super) const RECORD_DIR: &str = "/run/mvdp/labs";

fn record_path(prefix: &str) -> std::path::PathBuf {
    std::path::Path::new(RECORD_DIR).join(prefix)
}

/// A lab record: its namespaces one per line, then `backend KIND[:MODE]` (records written before
/// backends existed have no such line), then `daemon PID DIR SOCKET` for a lab with a daemon.
struct Record {
    namespaces: Vec<String>,
    backend: Option<Backend>,
    daemon: Option<LabDaemon>,
}

const BACKEND_LINE: &str = "backend ";
const DAEMON_LINE: &str = "daemon ";

fn write_record(
    prefix: &str,
    namespaces: &[String],
    backend: Backend,
    daemon: Option<&LabDaemon>,
) -> Result<()> {
    let path = record_path(prefix);
    let mut text = format!("{}\n{BACKEND_LINE}{backend}\n", namespaces.join("\n"));
    if let Some(d) = daemon {
        text.push_str(&format!(
            "{DAEMON_LINE}{} {} {}\n",
            d.pid,
            d.dir.display(),
            d.socket.display()
        ));
    }
    std::fs::create_dir_all(RECORD_DIR)
        .and_then(|()| std::fs::write(&path, text))
        .map_err(|e| Error::io(format!("recording lab {prefix} in {}", path.display()), e))
}

fn parse_record(text: &str) -> Record {
    let mut r = Record {
        namespaces: Vec::new(),
        backend: None,
        daemon: None,
    };
    for line in text.lines() {
        if let Some(b) = line.strip_prefix(BACKEND_LINE) {
            r.backend = b.parse().ok();
        } else if let Some(d) = line.strip_prefix(DAEMON_LINE) {
            let mut f = d.split(' ');
            if let (Some(Ok(pid)), Some(dir), Some(socket)) =
                (f.next().map(str::parse), f.next(), f.next())
            {
                r.daemon = Some(LabDaemon {
                    pid,
                    dir: dir.into(),
                    socket: socket.into(),
                });
            }
        } else {
            r.namespaces.push(line.to_string());
        }
    }
    r
}

fn read_record(prefix: &str) -> Result<Option<Record>> {
    let path = record_path(prefix);
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(Some(parse_record(&text))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

fn remove_record(prefix: &str) -> Result<()> {
    let path = record_path(prefix);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(Error::io(format!("removing {}", path.display()), e))
        }
        _ => Ok(()),
    }
}

/// Groups namespace names into labs by prefix (names that are not `{prefix}-<role>` are ignored).
pub fn group_labs(names: &[String]) -> Vec<LabSummary> {
    let mut by: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for n in names {
        if let Some((p, _)) = parse_lab_netns(n) {
            by.entry(p.to_string()).or_default().push(n.clone());
        }
    }
    by.into_iter()
        .map(|(name, namespaces)| LabSummary {
            name,
            namespaces,
            backend: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mvdp_switch::Mode;

    #[test]
    fn records_keep_the_backend_and_old_records_still_read() {
        let names = ["a-wire".to_string(), "a-host".to_string()];
        let text = format!(
            "{}\n{BACKEND_LINE}{}\n",
            names.join("\n"),
            Backend::Macvlan(Mode::Vepa)
        );
        let r = parse_record(&text);
        assert_eq!(r.namespaces, names);
        assert_eq!(r.backend, Some(Backend::Macvlan(Mode::Vepa)));
        assert_eq!(r.daemon, None);
        let d = LabDaemon {
            pid: 42,
            dir: "/run/mvdp/labs/a.mvdp".into(),
            socket: "/run/mvdp/labs/a.mvdp/mvdp.sock".into(),
        };
        let with = format!(
            "{}\n{BACKEND_LINE}mvdp:private\n{DAEMON_LINE}42 {} {}\n",
            names.join("\n"),
            d.dir.display(),
            d.socket.display()
        );
        let r = parse_record(&with);
        assert_eq!(r.namespaces, names);
        assert_eq!(r.backend, Some(Backend::Mvdp(Mode::Private)));
        assert_eq!(r.daemon, Some(d));
        let old = parse_record("a-wire\na-host\n");
        assert_eq!((old.namespaces, old.backend), (names.to_vec(), None));
    }

    #[test]
    fn grouping() {
        let names: Vec<String> = [
            "a-wire",
            "a-ext",
            "a-c1",
            "b-x-host1",
            "b-x-wire",
            "unrelated",
            "c-other",
        ]
        .map(String::from)
        .to_vec();
        let labs = group_labs(&names);
        assert_eq!(labs.len(), 2);
        assert_eq!(labs[0].name, "a");
        assert_eq!(labs[0].namespaces, vec!["a-wire", "a-ext", "a-c1"]);
        assert_eq!(labs[1].name, "b-x");
    }

    #[test]
    fn error_messages_name_the_lab() {
        let e = Error::LabExists {
            prefix: "lab".into(),
            namespaces: vec!["lab-wire".into(), "lab-ext".into()],
        };
        assert_eq!(
            e.to_string(),
            "lab lab already exists (namespaces: lab-wire, lab-ext); run `mvdp lab down --name lab`"
        );
        assert!(Error::NoSuchLab("zz".into())
            .to_string()
            .contains("no lab named zz"));
    }
}
