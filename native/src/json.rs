//! A strict JSON scanner over one message (RFC 8259, validated UTF-8).
//!
//! It accepts a subset of what Python reads: whatever it accepts, orjson and the stdlib `json`
//! read as the same values. Everything else is `Refuse`: the message goes, whole, to the
//! Python reference path, which reads it or says why it is invalid. Refused here: NaN and
//! Infinity, numbers that overflow a double, integers beyond 64 bits, lone surrogates, control
//! characters in strings, nesting deeper than `MAX_DEPTH`.

pub const MAX_DEPTH: u32 = 64;

#[derive(Debug)]
pub struct Refuse;
pub type R<T> = Result<T, Refuse>;

/// A string's bytes: a range of the message (no escapes) or of the arena (unescaped).
#[derive(Clone, Copy, Debug, Default)]
pub struct S {
    pub arena: bool,
    pub a: u32,
    pub b: u32,
}

#[derive(Clone, Copy, Debug)]
pub enum Num {
    Int(i64),
    Float(f64),
}

pub const NULL: u8 = 1;
pub const FALSE: u8 = 2;
pub const TRUE: u8 = 3;
pub const INT: u8 = 4;
pub const FLOAT: u8 = 5;
pub const STR: u8 = 6;
pub const NESTED: u8 = 7; // any object or array: a mismatch for every kind of feature

/// A value: its tag (above), the bits of an int or a double, the bytes of a string. A plain
/// struct, every field written: cheap to return and to copy.
#[derive(Clone, Copy, Debug)]
pub struct V {
    pub tag: u8,
    pub bits: u64,
    pub s: S,
}

impl V {
    #[inline]
    pub fn of(tag: u8) -> V {
        V { tag, bits: 0, s: S::default() }
    }

    #[inline]
    pub fn num(n: Num) -> V {
        match n {
            Num::Int(i) => V { tag: INT, bits: i as u64, s: S::default() },
            Num::Float(f) => V { tag: FLOAT, bits: f.to_bits(), s: S::default() },
        }
    }

    #[inline]
    pub fn int(&self) -> i64 {
        self.bits as i64
    }

    #[inline]
    pub fn float(&self) -> f64 {
        f64::from_bits(self.bits)
    }
}

pub struct Scanner<'a> {
    pub b: &'a [u8],
    pub i: usize,
}

impl<'a> Scanner<'a> {
    pub fn new(b: &'a [u8]) -> Self {
        Scanner { b, i: 0 }
    }

    #[inline]
    pub fn ws(&mut self) {
        while self.i < self.b.len() {
            match self.b[self.i] {
                b' ' | b'\t' | b'\n' | b'\r' => self.i += 1,
                _ => break,
            }
        }
    }

    /// The next byte after whitespace (not consumed).
    #[inline]
    pub fn peek(&mut self) -> R<u8> {
        self.ws();
        self.b.get(self.i).copied().ok_or(Refuse)
    }

    #[inline]
    pub fn eat(&mut self, c: u8) -> R<()> {
        if self.peek()? == c {
            self.i += 1;
            Ok(())
        } else {
            Err(Refuse)
        }
    }

    /// After a member or element: true at the closing `close`, false after a comma.
    #[inline]
    pub fn next_or_end(&mut self, close: u8) -> R<bool> {
        match self.peek()? {
            b',' => {
                self.i += 1;
                Ok(false)
            }
            c if c == close => {
                self.i += 1;
                Ok(true)
            }
            _ => Err(Refuse),
        }
    }

    /// At `{` or `[` (consumed): true when the container is empty (its close consumed too).
    #[inline]
    pub fn open(&mut self, open: u8, close: u8) -> R<bool> {
        self.eat(open)?;
        if self.peek()? == close {
            self.i += 1;
            return Ok(true);
        }
        Ok(false)
    }

    pub fn at_end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len()
    }

    /// A string (at its opening quote, after whitespace); escapes are decoded into `arena`.
    /// Non-ASCII bytes must be valid UTF-8 (checked per string that has any).
    #[inline]
    pub fn string(&mut self, arena: &mut Vec<u8>) -> R<S> {
        self.eat(b'"')?;
        let start = self.i;
        let b = self.b;
        let mut i = self.i;
        let mut ascii = true;
        loop {
            while i + 8 <= b.len() {
                let x = u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
                if special(x) != 0 {
                    break;
                }
                i += 8;
            }
            let c = *b.get(i).ok_or(Refuse)?;
            if c == b'"' {
                self.i = i + 1;
                if !ascii {
                    utf8(&b[start..i])?;
                }
                return Ok(S { arena: false, a: start as u32, b: i as u32 });
            }
            if c == b'\\' {
                break;
            }
            if c < 0x20 {
                return Err(Refuse);
            }
            ascii &= c < 0x80;
            i += 1;
        }
        let a0 = arena.len();
        arena.extend_from_slice(&b[start..i]);
        while i < b.len() {
            let c = b[i];
            match c {
                b'"' => {
                    self.i = i + 1;
                    if !ascii {
                        utf8(&arena[a0..])?;
                    }
                    return Ok(S { arena: true, a: a0 as u32, b: arena.len() as u32 });
                }
                b'\\' => {
                    let e = *b.get(i + 1).ok_or(Refuse)?;
                    i += 2;
                    match e {
                        b'"' | b'\\' | b'/' => arena.push(e),
                        b'b' => arena.push(8),
                        b'f' => arena.push(12),
                        b'n' => arena.push(b'\n'),
                        b'r' => arena.push(b'\r'),
                        b't' => arena.push(b'\t'),
                        b'u' => {
                            let hi = hex4(b, i)?;
                            i += 4;
                            let cp = if (0xD800..0xDC00).contains(&hi) {
                                if b.get(i) != Some(&b'\\') || b.get(i + 1) != Some(&b'u') {
                                    return Err(Refuse); // a lone high surrogate
                                }
                                let lo = hex4(b, i + 2)?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(Refuse);
                                }
                                i += 6;
                                0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                            } else if (0xDC00..0xE000).contains(&hi) {
                                return Err(Refuse); // a lone low surrogate
                            } else {
                                hi
                            };
                            let ch = char::from_u32(cp).ok_or(Refuse)?;
                            let mut buf = [0u8; 4];
                            arena.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(Refuse),
                    }
                }
                c if c < 0x20 => return Err(Refuse),
                _ => {
                    ascii &= c < 0x80;
                    arena.push(c);
                    i += 1;
                }
            }
        }
        Err(Refuse)
    }

    /// A number (after whitespace): an integer without fraction or exponent (within 64 bits),
    /// else a finite double, rounded correctly as Python's `float()` rounds. One pass reads the
    /// digits; most doubles need no second (`exact_float`).
    #[inline]
    pub fn number(&mut self) -> R<Num> {
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let neg = b.get(i) == Some(&b'-');
        i += neg as usize;
        let mut m: u64 = 0; // the digits as an integer (wrapping: trusted while nd <= 19)
        let mut nd: u32 = 0; // significant digits (from the first non-zero one)
        match b.get(i) {
            Some(b'0') => i += 1,
            Some(b'1'..=b'9') => {
                while let Some(&c) = b.get(i) {
                    let d = c.wrapping_sub(b'0');
                    if d > 9 {
                        break;
                    }
                    m = m.wrapping_mul(10).wrapping_add(d as u64);
                    nd += 1;
                    i += 1;
                }
            }
            _ => return Err(Refuse),
        }
        let int_digits = nd;
        let mut scale: i32 = 0;
        let mut float = false;
        if b.get(i) == Some(&b'.') {
            float = true;
            i += 1;
            let f0 = i;
            while let Some(&c) = b.get(i) {
                let d = c.wrapping_sub(b'0');
                if d > 9 {
                    break;
                }
                if m != 0 || d != 0 {
                    m = m.wrapping_mul(10).wrapping_add(d as u64);
                    nd += 1;
                }
                scale -= 1;
                i += 1;
            }
            if i == f0 {
                return Err(Refuse);
            }
        }
        if matches!(b.get(i), Some(b'e') | Some(b'E')) {
            float = true;
            i += 1;
            let eneg = b.get(i) == Some(&b'-');
            if matches!(b.get(i), Some(b'+') | Some(b'-')) {
                i += 1;
            }
            let e0 = i;
            let mut e: i32 = 0;
            while let Some(&c) = b.get(i) {
                let d = c.wrapping_sub(b'0');
                if d > 9 {
                    break;
                }
                e = (e * 10 + d as i32).min(100_000);
                i += 1;
            }
            if i == e0 {
                return Err(Refuse);
            }
            scale += if eneg { -e } else { e };
        }
        self.i = i;
        if float {
            if nd <= 19 && m <= 1 << 53 && (-22..=22).contains(&scale) {
                let v = if scale >= 0 {
                    m as f64 * POW10[scale as usize]
                } else {
                    m as f64 / POW10[(-scale) as usize]
                };
                return Ok(Num::Float(if neg { -v } else { v }));
            }
            // ASCII digits, signs, '.', 'e': valid UTF-8
            let text = std::str::from_utf8(&b[start..i]).map_err(|_| Refuse)?;
            let v: f64 = text.parse().map_err(|_| Refuse)?;
            return if v.is_finite() { Ok(Num::Float(v)) } else { Err(Refuse) };
        }
        if int_digits > 19 {
            return Err(Refuse); // beyond 64 bits (19 digits never wrap)
        }
        if neg {
            if m > 1 << 63 {
                return Err(Refuse);
            }
            Ok(Num::Int((m as i64).wrapping_neg()))
        } else {
            if m > i64::MAX as u64 {
                return Err(Refuse);
            }
            Ok(Num::Int(m as i64))
        }
    }

    fn literal(&mut self, word: &[u8]) -> R<()> {
        if self.b[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(())
        } else {
            Err(Refuse)
        }
    }

    /// A scalar, or a validated object or array read as `Nested`.
    #[inline(always)]
    pub fn value(&mut self, arena: &mut Vec<u8>, depth: u32) -> R<V> {
        match self.peek()? {
            b'"' => Ok(V { tag: STR, bits: 0, s: self.string(arena)? }),
            b'n' => self.literal(b"null").map(|_| V::of(NULL)),
            b't' => self.literal(b"true").map(|_| V::of(TRUE)),
            b'f' => self.literal(b"false").map(|_| V::of(FALSE)),
            b'{' | b'[' => {
                let mark = arena.len();
                self.skip(arena, depth)?;
                arena.truncate(mark);
                Ok(V::of(NESTED))
            }
            _ => Ok(V::num(self.number()?)),
        }
    }

    /// Any value, validated and dropped.
    pub fn skip(&mut self, arena: &mut Vec<u8>, depth: u32) -> R<()> {
        if depth > MAX_DEPTH {
            return Err(Refuse);
        }
        match self.peek()? {
            b'{' => {
                if self.open(b'{', b'}')? {
                    return Ok(());
                }
                loop {
                    self.ws();
                    self.string(arena)?;
                    self.eat(b':')?;
                    self.skip(arena, depth + 1)?;
                    if self.next_or_end(b'}')? {
                        return Ok(());
                    }
                }
            }
            b'[' => {
                if self.open(b'[', b']')? {
                    return Ok(());
                }
                loop {
                    self.skip(arena, depth + 1)?;
                    if self.next_or_end(b']')? {
                        return Ok(());
                    }
                }
            }
            _ => self.value(arena, depth).map(|_| ()),
        }
    }
}

/// Non-zero when a byte of `x` is '"', '\\', a control character or not ASCII.
#[inline]
fn special(x: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let quote = x ^ (ONES * b'"' as u64);
    let slash = x ^ (ONES * b'\\' as u64);
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    zero(quote) | zero(slash) | (x.wrapping_sub(ONES * 0x20) & !x & HIGH) | (x & HIGH)
}

fn utf8(b: &[u8]) -> R<()> {
    std::str::from_utf8(b).map(|_| ()).map_err(|_| Refuse)
}

fn hex4(b: &[u8], i: usize) -> R<u32> {
    let digits = b.get(i..i + 4).ok_or(Refuse)?;
    let mut v = 0u32;
    for &c in digits {
        let d = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => return Err(Refuse),
        };
        v = v * 16 + d as u32;
    }
    Ok(v)
}

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// The bytes of a string found by the scanner.
#[inline]
pub fn bytes_of<'x>(s: S, message: &'x [u8], arena: &'x [u8]) -> &'x [u8] {
    let from = if s.arena { arena } else { message };
    &from[s.a as usize..s.b as usize]
}

/// Byte strings equal (short ones compared in words, not through memcmp).
#[inline]
pub fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if (8..=16).contains(&n) {
        let w = |x: &[u8], k: usize| u64::from_le_bytes(x[k..k + 8].try_into().unwrap());
        return w(a, 0) == w(b, 0) && w(a, n - 8) == w(b, n - 8);
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    a == b
}

/// Characters (code points) of valid UTF-8.
#[inline]
pub fn chars(b: &[u8]) -> usize {
    b.iter().filter(|&&c| (c & 0xC0) != 0x80).count()
}
