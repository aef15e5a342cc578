//! What the control crate's fuzz tests share: a fixed-seed generator and the ways they spoil JSON
//! text. Each test keeps its own values (sensible and nasty) and how often it spoils them.

/// xorshift64*: deterministic, so a failing input can be replayed from the seed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// Mostly a sensible value (`good`), `nasty_percent` times in a hundred one of `nasty`: inputs
/// must get past the JSON decoding often enough to reach the checks behind it.
pub fn field(r: &mut Rng, good: &[&str], nasty: &[&str], nasty_percent: u64) -> String {
    if r.below(100) < nasty_percent {
        r.pick(nasty).to_string()
    } else {
        r.pick(good).to_string()
    }
}

/// Spoils JSON object text `s` one way in `ways` (at least 3; the rest leave it alone): a byte
/// flipped, the text cut short, or a field nobody asked for (one of `keys`, with a value from
/// `nasty`) just after the opening brace.
pub fn mutate(r: &mut Rng, s: &str, ways: u64, keys: &[&str], nasty: &[&str]) -> String {
    let mut b = s.as_bytes().to_vec();
    match r.below(ways) {
        0 if !b.is_empty() => {
            let i = r.below(b.len() as u64) as usize;
            b[i] = r.next() as u8;
        }
        1 => b.truncate(r.below(b.len() as u64 + 1) as usize),
        2 if b.len() > 1 => {
            let extra = format!("\"{}\":{},", r.pick(keys), r.pick(nasty));
            b.splice(1..1, extra.into_bytes());
        }
        _ => {}
    }
    String::from_utf8_lossy(&b).into_owned()
}
