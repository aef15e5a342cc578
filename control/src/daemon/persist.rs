//! The daemon's state file: `STATE_DIR/state.json`, replaced atomically (write + rename) on every change.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::state::State;

pub const STATE_FILE: &str = "state.json";

pub fn path(dir: &Path) -> PathBuf {
    dir.join(STATE_FILE)
}

/// Why the state file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{}: {source}", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Loads the state; an absent file is an empty state.
pub fn load(dir: &Path) -> Result<State, LoadError> {
    let path = path(dir);
    match fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|source| LoadError::Parse { path, source })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
        Err(source) => Err(LoadError::Read { path, source }),
    }
}

/// Saves the state so that a crash leaves either the old or the new file, never half of one.
pub fn save(dir: &Path, state: &State) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec_pretty(state).map_err(io::Error::other)?)?;
    f.sync_all()?;
    fs::rename(&tmp, path(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_empty_and_round_trip_keeps_everything() {
        let dir = std::env::temp_dir().join(format!("mvdp-persist-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(load(&dir).unwrap(), State::default());
        let s = State {
            next_port_id: 7,
            ..Default::default()
        };
        save(&dir, &s).unwrap();
        assert_eq!(load(&dir).unwrap(), s);
        fs::write(path(&dir), b"{not json").unwrap();
        let e = load(&dir).unwrap_err().to_string();
        assert!(e.contains("state.json"), "{e}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
