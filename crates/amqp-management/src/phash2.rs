//! Erlang's `erlang:phash2(Term, 1 bsl 32)` for the terms RabbitMQ hashes: the management
//! API names a binding with arguments by the hash of its argument table (`properties_key`
//! `key~HASH`), and a client deleting a binding sends that name back, so ours must be the
//! same number. This is `make_hash2` of the Erlang runtime (erts/emulator/beam/utils.c:
//! Bob Jenkins' lookup2 mixing over atoms, integers, floats, binaries, tuples and lists),
//! checked against `erl` in the tests below.

/// The terms an AMQP field table becomes in RabbitMQ.
#[derive(Clone, Debug, PartialEq)]
pub enum Term {
    Atom(&'static str),
    Binary(Vec<u8>),
    Int(i128),
    Float(f64),
    Tuple(Vec<Term>),
    List(Vec<Term>),
}

/// The golden ratio, and its multiples (`HCONST * n mod 2^32`) used as type constants.
const HCONST: u32 = 0x9e37_79b9;
const HCONST_2: u32 = 0x3c6e_f372;
const HCONST_3: u32 = 0xdaa6_6d2b;
const HCONST_4: u32 = 0x78dd_e6e4;
const HCONST_9: u32 = 0x8ff3_4781;
const HCONST_10: u32 = 0x2e2a_c13a;
const HCONST_11: u32 = 0xcc62_3af3;
const HCONST_12: u32 = 0x6a99_b4ac;
const HCONST_13: u32 = 0x08d1_2e65;
/// The hash of `[]` when nothing was hashed before it.
const NIL_FIRST: u32 = 3_468_870_702;
/// The tag value of `[]` mixed in otherwise.
const NIL_DEF: u32 = 0x2;

/// `erlang:phash2(Term, 1 bsl 32)`.
pub fn phash2(term: &Term) -> u32 {
    let mut h = Hasher { hash: 0 };
    h.term(term);
    h.hash
}

fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
    macro_rules! step {
        ($x:ident, $y:ident, $z:ident, $op:tt, $n:expr) => {
            *$x = $x.wrapping_sub(*$y).wrapping_sub(*$z) ^ (*$z $op $n);
        };
    }
    step!(a, b, c, >>, 13);
    step!(b, c, a, <<, 8);
    step!(c, a, b, >>, 13);
    step!(a, b, c, >>, 12);
    step!(b, c, a, <<, 16);
    step!(c, a, b, >>, 5);
    step!(a, b, c, >>, 3);
    step!(b, c, a, <<, 10);
    step!(c, a, b, >>, 15);
}

/// The hash of an atom's name (`atom_hash`, a hashpjw, over ASCII names).
fn atom_hash(name: &str) -> u32 {
    let mut h: u32 = 0;
    for v in name.bytes() {
        h = (h << 4).wrapping_add(u32::from(v));
        let g = h & 0xf000_0000;
        if g != 0 {
            h ^= g >> 24;
            h ^= g;
        }
    }
    h
}

fn le32(k: &[u8]) -> u32 {
    k.iter()
        .take(4)
        .enumerate()
        .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (8 * i)))
}

/// `block_hash`: lookup2 over the bytes of a binary, 12 at a time.
fn block_hash(bytes: &[u8], initval: u32) -> u32 {
    let (mut a, mut b, mut c) = (HCONST, HCONST, initval);
    let mut chunks = bytes.chunks_exact(12);
    for k in &mut chunks {
        a = a.wrapping_add(le32(&k[0..4]));
        b = b.wrapping_add(le32(&k[4..8]));
        c = c.wrapping_add(le32(&k[8..12]));
        mix(&mut a, &mut b, &mut c);
    }
    let rest = chunks.remainder();
    // The binary's length, truncated to 32 bits as the runtime does.
    c = c.wrapping_add(bytes.len() as u32);
    for (i, byte) in rest.iter().enumerate() {
        let v = u32::from(*byte);
        match i {
            0..=3 => a = a.wrapping_add(v << (8 * i)),
            4..=7 => b = b.wrapping_add(v << (8 * (i - 4))),
            // The first byte of c holds the length.
            _ => c = c.wrapping_add(v << (8 * (i - 7))),
        }
    }
    mix(&mut a, &mut b, &mut c);
    c
}

struct Hasher {
    hash: u32,
}

impl Hasher {
    fn mix2(&mut self, e1: u32, e2: u32, konst: u32) {
        let mut a = konst.wrapping_add(e1);
        let mut b = konst.wrapping_add(e2);
        mix(&mut a, &mut b, &mut self.hash);
    }

    fn mix1(&mut self, e: u32, konst: u32) {
        self.mix2(e, 0, konst);
    }

    fn term(&mut self, t: &Term) {
        match t {
            Term::Atom(name) => {
                let h = atom_hash(name);
                if self.hash == 0 {
                    self.hash = h;
                } else {
                    self.mix1(h, HCONST_3);
                }
            }
            Term::Int(i) => self.int(*i),
            Term::Float(f) => {
                // -0.0 hashes as 0.0.
                let bits = if *f == 0.0 { 0u64 } else { f.to_bits() };
                self.mix2((bits >> 32) as u32, bits as u32, HCONST_12);
            }
            Term::Binary(bytes) => {
                let con = HCONST_13.wrapping_add(self.hash);
                self.hash = if bytes.is_empty() {
                    con
                } else {
                    block_hash(bytes, con)
                };
            }
            Term::Tuple(items) => {
                self.mix1(items.len() as u32, HCONST_9);
                for item in items {
                    self.term(item);
                }
            }
            Term::List(items) => self.list(items),
        }
    }

    fn int(&mut self, i: i128) {
        if (-(1 << 27)..(1 << 27)).contains(&i) {
            // Small integers of 28 bits: their 32-bit value (negative ones mixed twice).
            let y = i as i32;
            if y < 0 {
                self.mix1(y.wrapping_neg() as u32, HCONST);
            }
            self.mix1(y as u32, HCONST);
        } else {
            // Larger ones by magnitude, 64 bits at a time (one digit covers every value a
            // field table holds), with the sign in the constant.
            let con = if i < 0 { HCONST_10 } else { HCONST_11 };
            let mut t = i.unsigned_abs();
            loop {
                let digit = t as u64;
                self.mix2(digit as u32, (digit >> 32) as u32, con);
                t >>= 64;
                if t == 0 {
                    break;
                }
            }
        }
    }

    /// A list: runs of bytes (small integers 0..=255) are hashed four at a time, as the
    /// runtime does for strings; other elements one by one; then the `[]` that ends it.
    fn list(&mut self, items: &[Term]) {
        let mut i = 0;
        loop {
            let (mut count, mut packed) = (0u32, 0u32);
            while let Some(Term::Int(b @ 0..=255)) = items.get(i) {
                packed = (packed << 8).wrapping_add(*b as u32);
                if count == 3 {
                    self.mix1(packed, HCONST_4);
                    count = 0;
                    packed = 0;
                } else {
                    count += 1;
                }
                i += 1;
            }
            if count > 0 {
                self.mix1(packed, HCONST_4);
            }
            match items.get(i) {
                Some(item) => {
                    self.term(item);
                    i += 1;
                }
                None => break,
            }
        }
        if self.hash == 0 {
            self.hash = NIL_FIRST;
        } else {
            self.mix1(NIL_DEF, HCONST_2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Term::*;
    use super::*;

    fn bin(s: &str) -> Term {
        Binary(s.as_bytes().to_vec())
    }

    fn entry(key: &str, kind: &'static str, value: Term) -> Term {
        Tuple(vec![bin(key), Atom(kind), value])
    }

    /// Values printed by `erlang:phash2(T, 1 bsl 32)` on Erlang/OTP 25.
    #[test]
    fn same_numbers_as_erlang() {
        let cases: Vec<(Term, u32)> = vec![
            (List(vec![]), 3_468_870_702),
            (Binary(vec![]), 147_926_629),
            (bin("abc"), 1_306_188_027),
            (bin("0123456789abcdef0123"), 1_706_607_255),
            (Atom("longstr"), 56_945_346),
            (Int(0), 3_175_731_469),
            (Int(1), 539_485_162),
            (Int(-1), 1_117_813_597),
            (Int(134_217_727), 4_273_352_567),
            (Int(134_217_728), 2_562_491_755),
            (Int(-134_217_728), 874_979_335),
            (Int(-134_217_729), 1_418_916_782),
            (Int(5_000_000_000), 4_245_075_809),
            (Int(-5_000_000_000), 3_666_884_218),
            (Int(i128::from(i64::MAX)), 2_712_534_173),
            (Int(i128::from(i64::MIN)), 1_736_826_119),
            (Int(i128::from(u64::MAX)), 321_870_806),
            (Float(1.5), 2_023_646_235),
            (Float(0.0), 423_528_920),
            (Float(-2.25), 2_254_282_282),
            (Tuple(vec![]), 221_703_996),
            (Tuple(vec![Atom("a")]), 2_853_905_094),
            (Tuple(vec![Atom("a"), bin("x"), Int(1)]), 2_009_500_192),
            (List(vec![Int(1), Int(2), Int(3)]), 4_186_538_188),
            (
                List(vec![Int(1), Int(2), Int(3), Int(4), Int(5)]),
                3_824_152_778,
            ),
            (List(vec![Int(256), Int(1)]), 514_113_909),
            (
                List(vec![Tuple(vec![Atom("a"), Int(1)]), Int(2), Int(3)]),
                3_526_262_971,
            ),
            (List(vec![entry("n", "array", List(vec![]))]), 3_747_719_148),
            (
                List(vec![entry("n", "void", Atom("undefined"))]),
                778_345_160,
            ),
            (
                List(vec![entry("k", "decimal", Tuple(vec![Int(2), Int(12345)]))]),
                2_052_360_962,
            ),
            (
                List(vec![entry("k", "timestamp", Int(1_700_000_000))]),
                2_154_248_957,
            ),
            (
                List(vec![entry("k", "binary", Binary(vec![1, 2, 3]))]),
                2_258_887_759,
            ),
            (List(vec![entry("k", "signedint", Int(-7))]), 2_697_297_454),
            (List(vec![entry("k", "byte", Int(5))]), 2_780_820_736),
        ];
        for (term, want) in cases {
            assert_eq!(phash2(&term), want, "{term:?}");
        }
    }
}
