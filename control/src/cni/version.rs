//! CNI spec versions: the ones mvdp speaks and how they compare.

use super::error::{code, CniError, CniResult};

/// The versions mvdp's plugin speaks (results are written in the caller's).
pub const SUPPORTED: &[&str] = &["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// The newest one: what VERSION answers with when asked nothing in particular.
pub const LATEST: &str = "1.1.0";

/// `a.b.c` as numbers; `None` when it is not such a version.
pub fn parse(v: &str) -> Option<(u32, u32, u32)> {
    let mut it = v.split('.').map(|p| p.parse::<u32>().ok());
    let r = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(r)
}

/// `v` >= `min` (both well formed; a malformed `v` is never).
pub fn at_least(v: &str, min: &str) -> bool {
    matches!((parse(v), parse(min)), (Some(a), Some(b)) if a >= b)
}

/// Refuses a version mvdp does not speak, with the spec's code 1.
pub fn check_supported(v: &str) -> CniResult<()> {
    if SUPPORTED.contains(&v) {
        Ok(())
    } else {
        Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("incompatible CNI version {v:?}"),
        )
        .with_details(format!("mvdp supports {}", SUPPORTED.join(", "))))
    }
}

/// The highest version in both lists (mvdp's and a delegate's), at least 0.3.0.
pub fn highest_common(theirs: &[String]) -> Option<&'static str> {
    SUPPORTED
        .iter()
        .rev()
        .find(|v| theirs.iter().any(|t| t == *v))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_and_unknown_ones_are_refused() {
        assert!(at_least("1.1.0", "1.0.0") && at_least("0.4.0", "0.4.0"));
        assert!(!at_least("0.3.1", "0.4.0") && !at_least("x", "0.1.0"));
        assert!(at_least("0.10.0", "0.4.0"));
        assert_eq!(check_supported("0.2.0").unwrap_err().code, 1);
        assert!(check_supported("1.1.0").is_ok());
        let theirs: Vec<String> = ["0.1.0", "0.4.0", "1.0.0"].map(String::from).to_vec();
        assert_eq!(highest_common(&theirs), Some("1.0.0"));
        assert_eq!(highest_common(&["0.2.0".to_string()]), None);
    }
}
