//! The CNI_* environment a runtime sets for a plugin, and CNI_ARGS.

use super::error::{invalid_env, CniResult};
use crate::names::validate_ifname;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

impl Command {
    pub fn parse(s: &str) -> CniResult<Command> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            _ => {
                return Err(invalid_env(format!(
                    "unknown CNI_COMMAND {s:?}: expected ADD, DEL, CHECK, VERSION, STATUS or GC"
                )))
            }
        })
    }
}

/// The parameters a runtime passes in the environment, checked for the command.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Env {
    pub container_id: String,
    /// `CNI_NETNS`; empty when not given (DEL may come without it).
    pub netns: String,
    pub ifname: String,
    pub args: Args,
    /// `CNI_PATH`, split.
    pub path: Vec<String>,
}

/// What mvdp reads from CNI_ARGS (`K=V;K=V`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Args {
    pub mac: Option<String>,
}

/// Parses CNI_ARGS. Keys mvdp or its IPAM plugins know (MAC, IP, IgnoreUnknown) are taken; any
/// other key is refused unless `IgnoreUnknown` is `1` or `true`, as the reference plugins do.
pub fn parse_args(s: &str) -> CniResult<Args> {
    let mut args = Args::default();
    let mut unknown = vec![];
    let mut ignore = false;
    for pair in s.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| invalid_env(format!("CNI_ARGS: {pair:?} is not KEY=VALUE")))?;
        match k {
            "IgnoreUnknown" => {
                ignore = match v.to_ascii_lowercase().as_str() {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => {
                        return Err(invalid_env(format!(
                            "CNI_ARGS: IgnoreUnknown={v:?} is not 1, 0, true or false"
                        )))
                    }
                }
            }
            "MAC" => args.mac = Some(v.to_string()),
            // For the IPAM plugin (host-local, static), which reads CNI_ARGS itself.
            "IP" => {}
            _ => unknown.push(k.to_string()),
        }
    }
    if !unknown.is_empty() && !ignore {
        return Err(invalid_env(format!(
            "CNI_ARGS: unknown key(s) {} (add IgnoreUnknown=1 to ignore them)",
            unknown.join(", ")
        )));
    }
    Ok(args)
}

/// Reads the environment through `var` for `cmd`: what the spec requires of each command is
/// required here (code 4 when missing or malformed).
pub fn read(cmd: Command, var: &dyn Fn(&str) -> Option<String>) -> CniResult<Env> {
    let get = |k: &str| var(k).unwrap_or_default();
    let need = |k: &str| {
        let v = get(k);
        if v.is_empty() {
            Err(invalid_env(format!("{k} is not set")))
        } else {
            Ok(v)
        }
    };
    let mut env = Env {
        path: get("CNI_PATH")
            .split(':')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect(),
        ..Env::default()
    };
    match cmd {
        Command::Version | Command::Status | Command::Gc => return Ok(env),
        Command::Add | Command::Check => env.netns = need("CNI_NETNS")?,
        Command::Del => env.netns = get("CNI_NETNS"),
    }
    env.container_id = need("CNI_CONTAINERID")?;
    crate::daemon::state::validate_container_id(&env.container_id)
        .map_err(|e| invalid_env(format!("CNI_CONTAINERID: {e}")))?;
    env.ifname = need("CNI_IFNAME")?;
    validate_ifname(&env.ifname).map_err(|e| invalid_env(format!("CNI_IFNAME: {e}")))?;
    env.args = parse_args(&get("CNI_ARGS"))?;
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn cni_args_take_mac_and_ignore_unknown_only_when_told() {
        assert_eq!(parse_args("").unwrap(), Args::default());
        let a =
            parse_args("IgnoreUnknown=1;K8S_POD_NAME=x;MAC=02:00:00:00:00:01;IP=10.0.0.2").unwrap();
        assert_eq!(a.mac.as_deref(), Some("02:00:00:00:00:01"));
        assert!(parse_args("IgnoreUnknown=true;FOO=1").is_ok());
        for (s, want) in [
            ("K8S_POD_NAME=x", "unknown key(s) K8S_POD_NAME"),
            ("IgnoreUnknown=0;FOO=1", "unknown key"),
            ("IgnoreUnknown=maybe", "IgnoreUnknown"),
            ("MAC", "not KEY=VALUE"),
        ] {
            let e = parse_args(s).unwrap_err();
            assert_eq!(e.code, 4, "{s}");
            assert!(e.msg.contains(want), "{s}: {}", e.msg);
        }
    }

    #[test]
    fn each_command_requires_its_variables() {
        let full: HashMap<&str, &str> = [
            ("CNI_CONTAINERID", "abc"),
            ("CNI_NETNS", "/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/a:/b"),
        ]
        .into();
        let without = |k: &str| {
            let mut m = full.clone();
            m.remove(k);
            m
        };
        let read_with = |cmd, m: &HashMap<&str, &str>| {
            let m = m.clone();
            read(cmd, &move |k: &str| m.get(k).map(|v| v.to_string()))
        };
        let e = read_with(Command::Add, &full).unwrap();
        assert_eq!(e.path, vec!["/a", "/b"]);
        for k in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
            let e = read_with(Command::Add, &without(k)).unwrap_err();
            assert_eq!((e.code, e.msg.contains(k)), (4, true), "{k}: {e}");
        }
        assert_eq!(
            read_with(Command::Del, &without("CNI_NETNS"))
                .unwrap()
                .netns,
            ""
        );
        assert!(read_with(Command::Gc, &HashMap::new()).is_ok());
        let mut bad = full.clone();
        bad.insert("CNI_IFNAME", "a/b");
        assert_eq!(read_with(Command::Add, &bad).unwrap_err().code, 4);
        bad.insert("CNI_IFNAME", "eth0");
        bad.insert("CNI_CONTAINERID", "-x");
        assert_eq!(read_with(Command::Add, &bad).unwrap_err().code, 4);
        assert_eq!(Command::parse("BOGUS").unwrap_err().code, 4);
    }
}
