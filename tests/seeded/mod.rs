//! The campaigns' draws (tests/faults, tests/net_abuse): splitmix64, small and reproducible
//! from a printed seed.

#![allow(dead_code)]

pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    pub fn hex(&mut self, n: usize) -> String {
        hex::encode(self.bytes(n.div_ceil(2)))[..n].to_string()
    }
    /// Between `min` and `min + spread - 1` random bytes.
    pub fn some_bytes(&mut self, min: usize, spread: usize) -> Vec<u8> {
        let n = min + self.below(spread);
        self.bytes(n)
    }
    pub fn some_hex(&mut self, min: usize, spread: usize) -> String {
        let n = min + self.below(spread);
        self.hex(n)
    }
    /// `valid`, damaged: cut, bytes flipped, inserted or removed.
    pub fn mutate(&mut self, valid: &[u8]) -> Vec<u8> {
        let mut v = valid.to_vec();
        for _ in 0..=self.below(4) {
            let at = self.below(v.len() + 1);
            match self.below(4) {
                0 => v.truncate(at),
                1 if at < v.len() => v[at] ^= 1 << self.below(8),
                2 => {
                    let b = self.some_bytes(1, 8);
                    v.splice(at..at, b);
                }
                _ if at < v.len() => {
                    v.remove(at);
                }
                _ => {}
            }
        }
        v
    }
}
